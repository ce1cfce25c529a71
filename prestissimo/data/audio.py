"""Audio file I/O: writing generated waveforms as WAV files any player opens, reading clips back for evaluation."""

from __future__ import annotations

import logging
from math import gcd
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def prepare_for_pcm(audio: torch.Tensor | np.ndarray) -> np.ndarray:
    """[C, T] float tensor or array -> [T, C] float32 array in [-1, 1].

    Non-finite samples are an error (a broken model, not something to hide in a file). A clip that
    would clip is scaled down to a 0.999 peak instead of being hard-clipped, which would distort it.
    Arrays are accepted so that the torch-free engine writes through the same function.
    """
    if hasattr(audio, "detach"):  # a torch tensor, on any device and dtype
        audio = audio.detach().float().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise ValueError(f"expected audio [channels, samples], got shape {tuple(audio.shape)}")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite samples; refusing to write it")
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 1.0:
        log.info("peak %.3f > 1: scaling the clip down to avoid clipping", peak)
        audio = audio * np.float32(0.999 / peak)
    return np.ascontiguousarray(audio.T)


def save_wav(audio: torch.Tensor | np.ndarray, path: str | Path, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write one clip [C, T] as a WAV file (16-bit PCM by default)."""
    path = Path(path)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), prepare_for_pcm(audio), sample_rate, subtype=subtype, format="WAV")
    return path


class AudioLoadError(ValueError):
    """An audio file that cannot be used (missing, corrupt, empty, non-finite); the message names it."""


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a file as float32 [channels, samples] plus its sample rate.

    Every failure becomes one error type naming the file, so a metric run over thousands of clips can
    report which one is bad instead of dying deep inside libsndfile.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioLoadError(f"cannot read audio {path}: no such file")
    try:
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, TypeError, ValueError) as exc:  # LibsndfileError is a RuntimeError
        raise AudioLoadError(f"cannot read audio {path}: {exc}") from exc
    if data.size == 0:
        raise AudioLoadError(f"cannot use audio {path}: it contains no samples")
    if not np.isfinite(data).all():
        raise AudioLoadError(f"cannot use audio {path}: it contains NaN or infinite samples")
    return np.ascontiguousarray(data.T), int(sample_rate)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with a polyphase filter (exact rational ratio, no torchaudio).

    The ratio is reduced by the gcd so 44.1 kHz -> 16 kHz filters with 160/441, not 16000/44100.
    Floating inputs keep their dtype.
    """
    from scipy.signal import resample_poly  # lazy: scipy.signal is slow to import for save_wav users

    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    audio = np.asarray(audio)
    if orig_sr == target_sr:
        return audio
    g = gcd(int(orig_sr), int(target_sr))
    out = resample_poly(audio, int(target_sr) // g, int(orig_sr) // g, axis=-1)
    return out.astype(audio.dtype, copy=False) if np.issubdtype(audio.dtype, np.floating) else out
