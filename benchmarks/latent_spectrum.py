"""Where in time-frequency a latent cache keeps its variance: notes, beats and fades change the
audio at 0.5-10 Hz, so a latent space a DiT can structure well puts most of its variance there.
Variance at high modulation rates (fast-moving, waveform-like latents) is detail that noise buries
first, so a diffusion model decides it before, and independently of, the rhythm and melody.

For each `prestissimo encode` folder: the share of the per-channel latent variance (clip means
removed) in modulation bands, from the mean power spectrum along time, and the lag-1
autocorrelation of consecutive frames (near 1: smooth; near 0: each frame unrelated to the last).

    python benchmarks/latent_spectrum.py LATENTS_DIR [LATENTS_DIR ...] [--clips 400]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

BANDS_HZ = ((0.0, 2.0), (2.0, 8.0), (8.0, 16.0), (16.0, 32.0), (32.0, float("inf")))


def load_latents(folder: Path, clips: int) -> tuple[torch.Tensor, float]:
    """Up to `clips` cached latents [N, D, frames] (valid frames only, shortest length) and the frame rate."""
    index = json.loads((folder / "latents.json").read_text())
    rows = index["rows"][:clips]
    shards: dict[str, torch.Tensor] = {}
    frames = min(r["frames"] for r in rows)
    out = []
    for r in rows:
        if r["shard"] not in shards:
            shards[r["shard"]] = load_file(str(folder / r["shard"]))["latents"]
        out.append(shards[r["shard"]][r["offset"], :, :frames])
    return torch.stack(out).double(), float(index["frames_per_second"])


def band_shares(latents: torch.Tensor, frame_rate: float) -> list[float]:
    """Share of the variance along time in each of BANDS_HZ (bands above Nyquist get 0)."""
    z = latents - latents.mean(-1, keepdim=True)
    power = (torch.fft.rfft(z, dim=-1).abs() ** 2).mean((0, 1)).numpy()
    power[0] = 0.0
    freqs = np.fft.rfftfreq(z.shape[-1], 1.0 / frame_rate)
    return [float(power[(freqs >= lo) & (freqs < hi)].sum() / power.sum()) for lo, hi in BANDS_HZ]


def lag1_autocorrelation(latents: torch.Tensor) -> float:
    z = latents - latents.mean(-1, keepdim=True)
    return float((z[..., 1:] * z[..., :-1]).mean() / (z * z).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--clips", type=int, default=400)
    args = parser.parse_args()
    bands = " | ".join(f"{lo:g}-{hi:g} Hz" if hi != float("inf") else f">{lo:g} Hz" for lo, hi in BANDS_HZ)
    print(f"| latents | frames/s | dims | {bands} | lag-1 autocorr |")
    print("|---|---:|---:|" + "---:|" * len(BANDS_HZ) + "---:|")
    for folder in args.folders:
        z, rate = load_latents(folder, args.clips)
        shares = " | ".join(f"{s:.2f}" for s in band_shares(z, rate))
        print(f"| {folder} | {rate:g} | {z.shape[1]} | {shares} | {lag1_autocorrelation(z):.2f} |")


if __name__ == "__main__":
    main()
