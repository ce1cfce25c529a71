"""Hand-built audio descriptors that the synthbench attribute estimators read: level, panning,
a YIN pitch track, an onset envelope, spectral slope and centroid. numpy/scipy only, on a 16 kHz
mono analysis copy (stereo statistics come from the original channels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import resample_poly, welch

ANALYSIS_SR = 16000
HOP = 160  # 10 ms frames
FRAME_RATE = ANALYSIS_SR / HOP


def frame_signal(x: np.ndarray, frame_length: int, hop: int) -> np.ndarray:
    """[T] -> [n_frames, frame_length] (zero-padded at the end), a strided view copied once."""
    n_frames = max(1, 1 + (len(x) - 1) // hop)
    padded = np.concatenate([x, np.zeros(frame_length + hop)])
    idx = np.arange(frame_length)[None, :] + hop * np.arange(n_frames)[:, None]
    return padded[idx]


def yin(x: np.ndarray, sample_rate: int, f_min: float = 50.0, f_max: float = 2200.0,
        window: int = 1024, hop: int = HOP, threshold: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """YIN (de Cheveigné & Kawahara 2002), vectorised over frames.

    Returns per-frame f0 in Hz and the aperiodicity (the cumulative-mean-normalised difference at
    the chosen lag; ~0 for a clean periodic tone, ~1 for noise).
    """
    tau_max = min(window - 1, int(sample_rate / f_min))
    tau_min = max(2, int(sample_rate / f_max))
    frames = frame_signal(x, window + tau_max, hop)
    n_fft = 1 << int(np.ceil(np.log2(2 * (window + tau_max))))
    head = np.fft.rfft(frames[:, :window], n_fft)
    full = np.fft.rfft(frames, n_fft)
    cross = np.fft.irfft(np.conj(head) * full, n_fft)[:, : tau_max + 1]  # sum_j x_j x_{j+tau}
    sq = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames**2, axis=1)], axis=1)
    taus = np.arange(tau_max + 1)
    energy_shifted = sq[:, taus + window] - sq[:, taus]
    diff = sq[:, window : window + 1] + energy_shifted - 2.0 * cross
    diff[:, 0] = 0.0
    cum = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, tau_max + 1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] / np.maximum(cum, 1e-12)
    search = cmnd[:, tau_min:]
    below = search < threshold
    # first dip under the threshold, then walk to its local minimum; else the global minimum
    first = np.where(below.any(axis=1), below.argmax(axis=1), search.argmin(axis=1))
    lag = first.copy()
    for _ in range(tau_max):
        nxt = np.minimum(lag + 1, search.shape[1] - 1)
        moving = search[np.arange(len(lag)), nxt] < search[np.arange(len(lag)), lag]
        if not moving.any():
            break
        lag = np.where(moving, nxt, lag)
    rows = np.arange(len(lag))
    aperiodicity = search[rows, lag]
    # parabolic interpolation around the minimum
    left = search[rows, np.maximum(lag - 1, 0)]
    right = search[rows, np.minimum(lag + 1, search.shape[1] - 1)]
    denom = left - 2 * aperiodicity + right
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
    period = lag + tau_min + np.clip(shift, -0.5, 0.5)
    return sample_rate / period, aperiodicity


@dataclass(frozen=True)
class AudioFeatures:
    """Everything the estimators need, computed once per clip."""

    level_db: float  # 10 log10 mean(L^2 + R^2): the mono level before constant-power panning
    balance_db: float  # right minus left channel energy
    envelope_db: np.ndarray  # frame energy (20 ms windows, 10 ms hop), dB
    active: np.ndarray  # frames within 30 dB of the loudest
    f0: np.ndarray
    aperiodicity: np.ndarray
    onset_envelope: np.ndarray  # rise (dB) of the 30 Hz - 2 kHz band energy
    high_onsets: np.ndarray  # the same above 5 kHz (hi-hats)
    log_centroid: np.ndarray  # per-frame spectral centroid, log2 Hz
    spectral_slope: float  # log10 power vs log10 frequency, 100 Hz - 6 kHz (0 white, -1 pink, -2 brown)
    frame_kurtosis: float  # median kurtosis of 20 ms frames of the high-passed signal


def analyse(audio: np.ndarray, sample_rate: int) -> AudioFeatures:
    """Compute AudioFeatures for one clip [channels, samples] (mono or stereo)."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.shape[-1] < sample_rate // 10:
        raise ValueError("clip shorter than 0.1 s: nothing to analyse")
    power = (audio**2).mean(axis=1)
    level = 10 * np.log10(power.sum() / (1 if audio.shape[0] == 2 else audio.shape[0] / 2) + 1e-20)
    if audio.shape[0] >= 2:
        balance = 10 * np.log10((power[1] + 1e-20) / (power[0] + 1e-20))
        mono = audio[:2].mean(axis=0)
    else:
        level = 10 * np.log10(power[0] + 1e-20)
        balance = 0.0
        mono = audio[0]
    g = np.gcd(sample_rate, ANALYSIS_SR)
    x = resample_poly(mono, ANALYSIS_SR // g, sample_rate // g) if sample_rate != ANALYSIS_SR else mono

    frames = frame_signal(x, 320, HOP)
    env = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
    active = env > env.max() - 30.0
    f0, aper = yin(x, ANALYSIS_SR)
    n = min(len(env), len(f0))

    spec = np.abs(np.fft.rfft(frame_signal(x, 1024, HOP) * np.hanning(1024), axis=1))
    freqs = np.fft.rfftfreq(1024, 1.0 / ANALYSIS_SR)
    log_spec = np.log(spec + 1e-6)
    flux = np.maximum(np.diff(log_spec, axis=0, prepend=log_spec[:1]), 0.0)
    low_band = 10 * np.log10((spec[:, (freqs > 30) & (freqs < 2000)] ** 2).sum(axis=1) + 1e-10)
    low_band = np.maximum(low_band, low_band.max() - 40.0)  # rises out of near-silence don't count
    onset = np.maximum(np.diff(low_band, prepend=low_band[:1]), 0.0)
    high = flux[:, freqs > 5000].mean(axis=1)
    power_spec = spec**2
    centroid = (power_spec * freqs).sum(axis=1) / (power_spec.sum(axis=1) + 1e-12)

    f_w, psd = welch(x, ANALYSIS_SR, nperseg=2048)
    band = (f_w >= 100) & (f_w <= 6000)
    slope = float(np.polyfit(np.log10(f_w[band]), np.log10(psd[band] + 1e-30), 1)[0])

    hp = np.diff(x)
    hf = frame_signal(hp, 320, 320)
    hf = hf[(hf**2).mean(axis=1) > 1e-12]
    if len(hf):
        m2 = (hf**2).mean(axis=1)
        kurt = float(np.median((hf**4).mean(axis=1) / m2**2))
    else:
        kurt = 0.0
    m = min(n, len(onset))
    return AudioFeatures(
        level_db=float(level), balance_db=float(balance), envelope_db=env[:m], active=active[:m],
        f0=f0[:m], aperiodicity=aper[:m], onset_envelope=onset[:m], high_onsets=high[:m],
        log_centroid=np.log2(np.maximum(centroid[:m], 1.0)), spectral_slope=slope, frame_kurtosis=kurt,
    )
