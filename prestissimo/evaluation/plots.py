"""Pictures people would rather look at than read: a grid of log-mel spectrograms with captions."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from prestissimo.data.audio import resample
from prestissimo.data.spectral import log_mel_spectrogram

PLOT_SAMPLE_RATE = 16000


def spectrogram_grid(clips: Sequence[np.ndarray], sample_rate: int, titles: Sequence[str], path: str | Path,
                     columns: int = 3, n_mels: int = 80) -> Path:
    """Save a PNG with one mel spectrogram (mid channel, dB, 0-8 kHz) per clip [C, T] and its title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not clips:
        raise ValueError("no clips to plot")
    rows = (len(clips) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.9 * rows), squeeze=False)
    for ax in axes.flat[len(clips):]:
        ax.axis("off")
    for ax, clip, title in zip(axes.flat, clips, titles):
        mono = np.asarray(clip, dtype=np.float64).reshape(-1, np.shape(clip)[-1]).mean(axis=0)
        x = resample(mono, sample_rate, PLOT_SAMPLE_RATE)
        mel = log_mel_spectrogram(torch.from_numpy(x), PLOT_SAMPLE_RATE, n_fft=1024, hop_length=160,
                                  n_mels=n_mels, eps=1e-10).numpy() * (10.0 / np.log(10.0))
        top = mel.max()
        ax.imshow(np.maximum(mel, top - 80.0), origin="lower", aspect="auto", cmap="magma",
                  extent=(0.0, len(x) / PLOT_SAMPLE_RATE, 0, n_mels))
        ax.set_title("\n".join(textwrap.wrap(title, 46)[:3]), fontsize=7.5)
        ax.set_xlabel("seconds", fontsize=7)
        ax.set_ylabel("mel band (0-8 kHz)", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
