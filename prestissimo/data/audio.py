"""Audio file I/O: writing generated waveforms as WAV files that any player opens."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

log = logging.getLogger(__name__)


def prepare_for_pcm(audio: torch.Tensor) -> np.ndarray:
    """[C, T] float tensor -> [T, C] float32 array in [-1, 1].

    Non-finite samples are an error (a broken model, not something to hide in a file). A clip that
    would clip is scaled down to a 0.999 peak instead of being hard-clipped, which would distort it.
    """
    if audio.dim() != 2:
        raise ValueError(f"expected audio [channels, samples], got shape {tuple(audio.shape)}")
    audio = audio.detach().float().cpu()
    if not torch.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite samples; refusing to write it")
    peak = float(audio.abs().max()) if audio.numel() else 0.0
    if peak > 1.0:
        log.info("peak %.3f > 1: scaling the clip down to avoid clipping", peak)
        audio = audio * (0.999 / peak)
    return audio.T.contiguous().numpy()


def save_wav(audio: torch.Tensor, path: str | Path, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write one clip [C, T] as a WAV file (16-bit PCM by default)."""
    path = Path(path)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), prepare_for_pcm(audio), sample_rate, subtype=subtype, format="WAV")
    return path
