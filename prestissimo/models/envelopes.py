"""Band loudness envelopes: the channels a DiT generates beside the autoencoder's latents.

Why: an Oobleck VAE's latents are waveform-like (consecutive frames nearly uncorrelated), so a clip's
loudness envelope (its notes and beats) lives only in their local *power*, a second-order statistic:
a linear read-out of the latents' local mean recovers 2% of the envelope's variance, of their local
log-power 95% (docs/training.md, "Envelope channels"). A denoiser predicts a mean, so early in sampling
it has no envelope to follow and where notes fall is left to the noise. Log band energies are
first-order and smooth: generated jointly with the latents (as ReDi does with image features), the
rhythm is decided early, as a coarse image layout is, and the latents' power follows it. The decoder
never sees these channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from prestissimo.models.config import ENERGY_FLOOR, EnvelopeSpec


def band_log_energies(audio: torch.Tensor, sample_rate: int, bands_hz: Sequence[tuple[float, float]], hop: int,
                      smoothing: int = 5) -> torch.Tensor:
    """Audio [B, C, T] -> natural-log mean power per band [B, bands, T // hop] (channels mixed to mono).

    Frame i is a Hann window of 4 * hop samples centred on sample i * hop, so frame i lines up with
    latent frame i of an autoencoder that downsamples by ``hop``; a moving average over ``smoothing``
    frames keeps the envelope's fast ripple (single waveform periods of a bass note) out.
    """
    if audio.dim() != 3:
        raise ValueError(f"audio must be [batch, channels, samples], got {tuple(audio.shape)}")
    frames = audio.shape[-1] // hop
    if frames < 1:
        raise ValueError(f"audio of {audio.shape[-1]} samples is shorter than one envelope frame ({hop})")
    mono = audio.float().mean(1)
    n_fft = 4 * hop
    spec = torch.stft(mono, n_fft, hop_length=hop, window=torch.hann_window(n_fft, device=mono.device),
                      center=True, return_complex=True)
    power = spec.abs().square()[..., :frames] / (n_fft * 0.375)  # Hann: mean power of a unit sine ~ 1
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate).to(mono.device)
    rows = []
    for lo, hi in bands_hz:
        mask = (freqs >= lo) & (freqs < hi)
        rows.append(power[:, mask].mean(1) if mask.any() else torch.zeros_like(power[:, 0]))
    energy = moving_average(torch.stack(rows, 1), smoothing)
    return torch.log(energy.clamp_min(0.0) + ENERGY_FLOOR)


def moving_average(x: torch.Tensor, width: int) -> torch.Tensor:
    """Centred moving average over ``width`` frames along the last axis of [N, C, L] (edges replicated)."""
    if width <= 1:
        return x
    kernel = torch.full((x.shape[1], 1, width), 1.0 / width, dtype=x.dtype, device=x.device)
    padded = torch.nn.functional.pad(x, ((width - 1) // 2, width // 2), mode="replicate")
    return torch.nn.functional.conv1d(padded, kernel, groups=x.shape[1])


def envelope_channels(audio: torch.Tensor, sample_rate: int, spec: EnvelopeSpec) -> torch.Tensor:
    """Audio [B, C, T] -> normalised envelope channels [B, bands, T // hop] (spec.mean/std must be set)."""
    if not spec.mean:
        raise ValueError("the envelope spec has no statistics: encode a dataset with envelopes first")
    log_e = band_log_energies(audio, sample_rate, spec.bands_hz, spec.hop, spec.smoothing)
    return normalise(log_e, spec)


def silence(spec: EnvelopeSpec) -> torch.Tensor:
    """The normalised envelope of silence (every band at the floor) [bands, 1]."""
    return torch.tensor(spec.silence())[:, None]


def normalise(log_energies: torch.Tensor, spec: EnvelopeSpec) -> torch.Tensor:
    """[..., bands, frames] log energies -> zero-mean channels of standard deviation ``spec.gain`` under
    the spec's statistics."""
    mean = torch.tensor(spec.mean, dtype=log_energies.dtype, device=log_energies.device)[:, None]
    std = torch.tensor(spec.std, dtype=log_energies.dtype, device=log_energies.device)[:, None]
    return (log_energies - mean) / std * spec.gain
