"""How much of a steady tone's waveform phase an autoencoder's latents carry: a DiT has to model
whatever the latents carry, and phase is the part prompts say nothing about.

For each frequency, one second of a steady stereo sine is encoded (VAE mean, edge frames dropped):
- `time variation`: the latents' mean per-channel std over time / their overall std. Near 0: a
  steady tone gives steady latents; near 1: the latents move as much over time as across channels.
- `phase shift`: ||z(sin) - z(cos)|| / ||z(sin)||, the same tone a quarter period later. Near 0:
  phase-blind latents; about 1.41: the two encodings are as different as two unrelated vectors.

    python benchmarks/latent_phase.py AE_DIR [AE_DIR ...] [--freqs 110 440 1760]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from prestissimo.models.autoencoder_io import load_autoencoder


def phase_sensitivity(ae: torch.nn.Module, rate: int, freq: float, edge: int = 8) -> tuple[float, float]:
    t = torch.arange(rate) / rate
    tones = [0.3 * torch.sin(2 * math.pi * freq * t + phase) for phase in (0.0, math.pi / 2)]
    with torch.no_grad():
        z, z_shift = (ae.encode(tone.expand(ae.cfg.audio_channels, -1)[None])[0, :, edge:-edge] for tone in tones)
    time_variation = float(z.std(dim=-1).mean() / z.std())
    shift = float((z - z_shift).norm() / z.norm())
    return time_variation, shift


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("autoencoders", type=Path, nargs="+")
    parser.add_argument("--freqs", type=float, nargs="+", default=[110.0, 440.0, 1760.0])
    args = parser.parse_args()
    print("| autoencoder | compression | latent | tone Hz | time variation | phase shift |")
    print("|---|---|---|---:|---:|---:|")
    for folder in args.autoencoders:
        ae, rate = load_autoencoder(folder)
        ae.eval()
        ratio, dim = ae.downsampling_ratio, ae.cfg.latent_dim
        for freq in args.freqs:
            variation, shift = phase_sensitivity(ae, rate, freq)
            print(f"| {folder} | {ratio}x | {dim} ch @ {rate / ratio:g} Hz | {freq:g} | {variation:.3f} | {shift:.3f} |")


if __name__ == "__main__":
    main()
