"""Signal primitives for synthbench: band-limited oscillators, plucked strings, FM bells, drums,
coloured and swept noise. Pure numpy/scipy functions of (parameters, rng) -> mono float64 arrays,
vectorised so that a 5 s clip renders in a few milliseconds."""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

TABLE_SIZE = 4096

# Harmonic amplitude recipes (index 0 = fundamental). Organ: drawbar-like 8', 4', 2 2/3', 2'.
_ORGAN_HARMONICS = {1: 1.0, 2: 0.6, 3: 0.45, 4: 0.35, 6: 0.15, 8: 0.12}


def midi_to_hz(midi: float | np.ndarray) -> float | np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi) - 69.0) / 12.0)


def harmonic_amplitudes(waveform: str, f0: float, sample_rate: int) -> np.ndarray:
    """Amplitudes of harmonics 1..K below Nyquist: a band-limited version of each waveform,
    so high notes do not alias."""
    count = max(1, int((sample_rate / 2 * 0.95) // f0))
    n = np.arange(1, count + 1, dtype=np.float64)
    if waveform == "sine":
        amps = (n == 1).astype(np.float64)
    elif waveform == "sawtooth":
        amps = 1.0 / n
    elif waveform == "square":
        amps = np.where(n % 2 == 1, 1.0 / n, 0.0)
    elif waveform == "organ":
        amps = np.array([_ORGAN_HARMONICS.get(int(k), 0.0) for k in n])
    else:
        raise ValueError(f"unknown waveform {waveform!r}")
    return amps


def wavetable(amplitudes: np.ndarray) -> np.ndarray:
    """One period of the sum of sine harmonics, sampled at TABLE_SIZE points (peak-normalised)."""
    spectrum = np.zeros(TABLE_SIZE // 2 + 1, dtype=np.complex128)
    k = min(len(amplitudes), TABLE_SIZE // 2 - 1)
    spectrum[1 : k + 1] = -1j * amplitudes[:k]  # sine phase
    table = np.fft.irfft(spectrum, n=TABLE_SIZE)
    return table / (np.abs(table).max() + 1e-12)


def oscillator(table: np.ndarray, freq: np.ndarray, sample_rate: int, phase0: float = 0.0) -> np.ndarray:
    """Read a wavetable at a per-sample frequency (Hz) with linear interpolation."""
    phase = (phase0 + np.cumsum(freq) / sample_rate) % 1.0
    pos = phase * TABLE_SIZE
    i0 = pos.astype(np.int64)
    frac = pos - i0
    return table[i0] * (1.0 - frac) + table[(i0 + 1) % TABLE_SIZE] * frac


def karplus_strong(f0: float, n_samples: int, sample_rate: int, rng: np.random.Generator,
                   decay_seconds: float = 1.5) -> np.ndarray:
    """Plucked string: a noise burst circulating in a delay line with a two-tap averaging filter.

    Computed one delay-line period at a time (each period depends only on the previous one), so
    the Python loop runs n/period times over numpy vectors instead of once per sample.
    """
    period = max(2, int(round(sample_rate / f0 - 0.5)))
    # Per-period loss that brings the string down by 60 dB in about decay_seconds.
    loss = 10.0 ** (-3.0 * period / (sample_rate * decay_seconds))
    out = np.empty(n_samples + period + 1)
    out[: period + 1] = rng.uniform(-1.0, 1.0, period + 1)
    out[: period + 1] -= out[: period + 1].mean()
    start = period + 1
    while start < len(out):
        stop = min(start + period, len(out))
        prev = out[start - period : stop - period]
        prev_shift = out[start - period - 1 : stop - period - 1]
        out[start:stop] = loss * 0.5 * (prev + prev_shift)
        start = stop
    sig = out[:n_samples]
    return sig / (np.abs(sig).max() + 1e-12)


def fm_bell(f0: float, n_samples: int, sample_rate: int, decay_seconds: float = 1.2) -> np.ndarray:
    """Bell/chime: a dominant fundamental plus inharmonic partials (Risset-style ratios) whose
    brightness decays faster than the body, as a struck metal bar does."""
    t = np.arange(n_samples) / sample_rate
    partials = ((1.0, 1.0, 1.0), (2.76, 0.4, 0.25), (5.40, 0.25, 0.12), (8.93, 0.15, 0.06))
    sig = np.zeros(n_samples)
    for ratio, amp, decay_scale in partials:
        freq = f0 * ratio
        if freq >= sample_rate / 2 * 0.95:
            continue
        sig += amp * np.sin(2 * np.pi * freq * t) * np.exp(-t / (decay_seconds * decay_scale / 6.9))
    return sig / (np.abs(sig).max() + 1e-12)


def adsr(n_samples: int, sample_rate: int, attack: float, release: float, sustain_samples: int) -> np.ndarray:
    """Linear attack, flat sustain until sustain_samples, linear release; zero afterwards."""
    env = np.zeros(n_samples)
    a = max(1, int(attack * sample_rate))
    r = max(1, int(release * sample_rate))
    hold = min(sustain_samples, n_samples)
    env[:hold] = 1.0
    env[: min(a, hold)] = np.linspace(0.0, 1.0, min(a, hold), endpoint=False)
    tail = min(r, n_samples - hold)
    if tail > 0:
        env[hold : hold + tail] = np.linspace(1.0, 0.0, tail, endpoint=False)
    return env


def coloured_noise(colour: str, n_samples: int, rng: np.random.Generator, sample_rate: int = 44100) -> np.ndarray:
    """White (flat), pink (1/f power) or brown (1/f^2 power) noise, shaped in the frequency domain.

    The 1/f shaping stops at 40 Hz (flat below, no DC): otherwise brown noise is dominated by a
    sub-audio drift that wanders in level over a few seconds.
    """
    white = rng.standard_normal(n_samples)
    if colour == "white":
        sig = white
    else:
        exponent = {"pink": 0.5, "brown": 1.0}[colour]
        spec = np.fft.rfft(white)
        freqs = np.maximum(np.fft.rfftfreq(n_samples, 1.0 / sample_rate), 40.0)
        spec[0] = 0.0
        sig = np.fft.irfft(spec / freqs**exponent, n=n_samples)
    sig = sig - sig.mean()
    return sig / (np.abs(sig).max() + 1e-12)


def swept_noise(n_samples: int, sample_rate: int, rng: np.random.Generator, f_start: float,
                f_end: float, bandwidth_octaves: float = 0.6, n_fft: int = 1024) -> np.ndarray:
    """Noise through a band-pass whose centre glides exponentially from f_start to f_end.

    Synthesised directly in the short-time Fourier domain: random-phase frames masked by a
    Gaussian band (in log frequency) around the current centre, then overlap-added with a
    periodic Hann window at 50% overlap (which sums to a constant).
    """
    hop = n_fft // 2
    n_frames = n_samples // hop + 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    centres = f_start * (f_end / f_start) ** np.linspace(0.0, 1.0, n_frames)
    log_dist = np.log2(np.maximum(freqs[None, :], 1.0) / centres[:, None])
    mask = np.exp(-0.5 * (log_dist / (bandwidth_octaves / 2.0)) ** 2)
    # Equal power in every frame: the band widens in Hz as it rises, which would otherwise make an
    # upward sweep also a crescendo.
    mask /= np.sqrt((mask**2).sum(axis=1, keepdims=True))
    spec = (rng.standard_normal(mask.shape) + 1j * rng.standard_normal(mask.shape)) * mask
    frames = np.fft.irfft(spec, n=n_fft, axis=1) * np.hanning(n_fft + 1)[:-1]
    out = np.zeros((n_frames + 1) * hop)
    out[: n_frames * hop] += frames[:, :hop].reshape(-1)
    out[hop : (n_frames + 1) * hop] += frames[:, hop:].reshape(-1)
    sig = out[hop : hop + n_samples]
    return sig / (np.abs(sig).max() + 1e-12)


def rain(n_samples: int, sample_rate: int, rng: np.random.Generator, drops_per_second: float = 60.0) -> np.ndarray:
    """Rain-like crackle: Poisson-timed droplets (short, bright, decaying noise bursts of random
    size) over a faint pink bed. Sparse enough that the crackle stays impulsive (heavy-tailed)
    rather than averaging out into steady noise."""
    count = rng.poisson(drops_per_second * n_samples / sample_rate)
    impulses = np.zeros(n_samples)
    idx = rng.integers(0, n_samples, count)
    np.add.at(impulses, idx, rng.choice([-1.0, 1.0], count) * rng.uniform(0.3, 1.0, count))
    k = int(0.004 * sample_rate)
    kernel = rng.standard_normal(k) * np.exp(-np.arange(k) / (0.0008 * sample_rate))
    kernel = np.diff(kernel, prepend=0.0)  # droplets are bright: tilt towards the highs
    drops = fftconvolve(impulses, kernel)[:n_samples]
    drops /= np.abs(drops).max() + 1e-12
    bed = coloured_noise("pink", n_samples, rng, sample_rate) * 0.03
    sig = drops + bed
    return sig / (np.abs(sig).max() + 1e-12)


def kick(sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    n = int(0.35 * sample_rate)
    t = np.arange(n) / sample_rate
    f_hi, f_lo = rng.uniform(140, 180), rng.uniform(45, 60)
    freq = f_lo + (f_hi - f_lo) * np.exp(-t / 0.03)
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    return np.sin(phase) * np.exp(-t / 0.12)


def snare(sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Snare: a short tonal body plus a broadband rattle that carries most of its energy."""
    n = int(0.25 * sample_rate)
    t = np.arange(n) / sample_rate
    body = np.sin(2 * np.pi * rng.uniform(180, 220) * t) * np.exp(-t / 0.03)
    rattle = rng.standard_normal(n) * np.exp(-t / 0.06)
    return 0.6 * body + 0.7 * rattle


def hihat(sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Closed hi-hat: a very short burst of noise above ~7 kHz (kept out of the kick/snare band)."""
    n = int(0.06 * sample_rate)
    t = np.arange(n) / sample_rate
    cutoff = min(7000.0, 0.35 * sample_rate)
    sos = butter(6, cutoff, btype="highpass", fs=sample_rate, output="sos")
    noise = sosfilt(sos, rng.standard_normal(n + 256))[256:]
    return 0.5 * noise * np.exp(-t / 0.012)


def place(buffer: np.ndarray, sound: np.ndarray, start: int, gain: float = 1.0) -> None:
    """Add a one-shot into buffer at sample `start`, cutting what falls past the end."""
    if start >= len(buffer):
        return
    stop = min(len(buffer), start + len(sound))
    buffer[start:stop] += gain * sound[: stop - start]


def pan_gains(position: float) -> tuple[float, float]:
    """Constant-power panning: -1 = hard left, 0 = centre, +1 = hard right."""
    theta = (position + 1.0) * np.pi / 4.0
    return float(np.cos(theta)), float(np.sin(theta))


def fade(n_samples: int, kind: str) -> np.ndarray:
    """Gain curve over the whole clip: a fade spans 80% of it, starting or ending in silence."""
    if kind == "none":
        return np.ones(n_samples)
    ramp_len = int(0.8 * n_samples)
    ramp = np.linspace(0.0, 1.0, ramp_len) ** 2  # perceptually even-ish
    curve = np.ones(n_samples)
    if kind == "in":
        curve[:ramp_len] = ramp
    elif kind == "out":
        curve[n_samples - ramp_len :] = ramp[::-1]
    else:
        raise ValueError(f"unknown fade {kind!r}")
    return curve
