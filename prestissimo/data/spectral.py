"""Mel filterbanks and log-mel spectrograms in plain torch (no torchaudio/librosa on this platform).

The mel scale is Slaney's (linear below 1 kHz, logarithmic above) and every triangle is divided by
its bandwidth ("area" normalisation), the convention of the Auditory Toolbox and of most audio
embedding front ends, so a band's output is an average energy density rather than growing with width.
"""

from __future__ import annotations

import math

import torch

_F_SP = 200.0 / 3.0  # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # = 15
_LOGSTEP = math.log(6.4) / 27.0  # 27 mel steps per factor 6.4 above 1 kHz


def hz_to_mel(freqs: torch.Tensor) -> torch.Tensor:
    """Slaney mel of frequencies in Hz (continuous at 1 kHz)."""
    freqs = torch.as_tensor(freqs, dtype=torch.float64)
    linear = freqs / _F_SP
    log = _MIN_LOG_MEL + torch.log(torch.clamp(freqs, min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(freqs >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mels: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`."""
    mels = torch.as_tensor(mels, dtype=torch.float64)
    linear = mels * _F_SP
    log = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (mels - _MIN_LOG_MEL))
    return torch.where(mels >= _MIN_LOG_MEL, log, linear)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Triangular Slaney mel filters [n_mels, n_fft // 2 + 1] (float32) for a one-sided power spectrum.

    Band m rises from edge m to its peak at edge m+1 and falls to edge m+2, the n_mels + 2 edges being
    equally spaced in mel between f_min and f_max (default Nyquist); each row is scaled by
    2 / (edge[m+2] - edge[m]).
    """
    f_max = sample_rate / 2.0 if f_max is None else float(f_max)
    if sample_rate <= 0 or n_fft <= 0 or n_mels <= 0:
        raise ValueError(f"sample_rate, n_fft and n_mels must be positive, got {sample_rate}, {n_fft}, {n_mels}")
    if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}")
    bin_freqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    mel_lo, mel_hi = (float(hz_to_mel(torch.tensor(f))) for f in (f_min, f_max))
    mel_edges = torch.linspace(mel_lo, mel_hi, n_mels + 2, dtype=torch.float64)
    edges = mel_to_hz(mel_edges)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bin_freqs[None, :] - lower) / (centre - lower)
    falling = (upper - bin_freqs[None, :]) / (upper - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights = weights * (2.0 / (upper - lower))
    return weights.to(torch.float32)


def log_mel_spectrogram(
    audio: torch.Tensor,
    sample_rate: int,
    n_fft: int = 1024,
    hop_length: int = 256,
    n_mels: int = 64,
    f_min: float = 0.0,
    f_max: float | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Natural-log mel power spectrogram: [..., T] -> [..., n_mels, frames].

    Hann window of n_fft samples, centred frames with zero padding (so clips shorter than a window
    still give one frame), power |STFT|^2, log of max(mel, eps). Floating dtypes are kept.
    """
    audio = torch.as_tensor(audio)
    if not audio.is_floating_point():
        audio = audio.float()
    if audio.dim() == 0:
        raise ValueError("audio must have a time axis [..., T]")
    lead, length = audio.shape[:-1], audio.shape[-1]
    flat = audio.reshape(-1, length)
    window = torch.hann_window(n_fft, periodic=True, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(
        flat, n_fft=n_fft, hop_length=hop_length, win_length=n_fft, window=window,
        center=True, pad_mode="constant", return_complex=True,
    )
    power = spec.real.square() + spec.imag.square()
    fb = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max).to(dtype=audio.dtype, device=audio.device)
    mel = torch.matmul(fb, power)
    return torch.log(torch.clamp(mel, min=eps)).reshape(*lead, n_mels, mel.shape[-1])
