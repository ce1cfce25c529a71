"""Where in time-frequency a latent cache keeps its variance: notes, beats and fades change the
audio at 0.5-10 Hz, so a latent space a DiT can structure well puts most of its variance there.
Variance at high modulation rates (fast-moving, waveform-like latents) is detail that noise buries
first, so a diffusion model decides it before, and independently of, the rhythm and melody.

For each `prestissimo encode` folder: the share of the per-channel latent variance (clip means
removed) in modulation bands, from the mean power spectrum along time, and the lag-1
autocorrelation of consecutive frames (near 1: smooth; near 0: each frame unrelated to the last).

Then where the loudness envelope lives: the R^2 of a linear read-out of the source audio's log
loudness (per latent frame, 40 ms smoothing) from the latents' local mean and from their local
log-power over the same 40 ms. A denoiser predicts a mean, so an envelope that only the power
carries (a second-order statistic) is one it cannot lay out early in sampling
(prestissimo/models/envelopes.py).

    python benchmarks/latent_spectrum.py LATENTS_DIR [LATENTS_DIR ...] [--clips 400] [--readout-clips 200]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from safetensors.torch import load_file

from prestissimo.models.envelopes import band_log_energies, moving_average

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


def _r2(features: torch.Tensor, target: torch.Tensor) -> float:
    """R^2 of the least-squares fit target ~ features @ w + b (rows: frames)."""
    x = torch.cat([features, torch.ones(len(features), 1, dtype=features.dtype)], 1)
    w = torch.linalg.lstsq(x, target[:, None]).solution
    return float(1 - ((target - (x @ w)[:, 0]) ** 2).mean() / target.var(unbiased=False))


def envelope_readout(folder: Path, clips: int, smoothing_s: float = 0.04) -> tuple[float, float]:
    """(R^2 from the local mean, R^2 from the local log-power) of the source audio's log loudness."""
    index = json.loads((folder / "latents.json").read_text())
    rate, hop = index["frames_per_second"], int(round(index["sample_rate"] / index["frames_per_second"]))
    width = max(1, int(round(smoothing_s * rate)))
    shards: dict[str, torch.Tensor] = {}
    means, powers, loudness = [], [], []
    for row in index["rows"][:clips]:
        if row["shard"] not in shards:
            shards[row["shard"]] = load_file(str(folder / row["shard"]))["latents"]
        z = shards[row["shard"]][row["offset"], :, : row["frames"]].double()
        audio, _ = sf.read(row["source"], dtype="float32", always_2d=True)
        frames = min(z.shape[-1], len(audio) // hop)
        if frames < width:
            continue
        audio_t = torch.from_numpy(audio.T[None, :, : frames * hop].copy())
        loud = band_log_energies(audio_t, index["sample_rate"], [(0.0, float("inf"))], hop, width)[0, 0]
        z = z[:, :frames]
        means.append(moving_average(z[None], width)[0].T)
        powers.append(torch.log(moving_average(z[None] ** 2, width)[0] + 1e-6).T)
        loudness.append(loud.double())
    target = torch.cat(loudness)
    return _r2(torch.cat(means), target), _r2(torch.cat(powers), target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--readout-clips", type=int, default=200, help="clips for the envelope read-out (0: skip)")
    args = parser.parse_args()
    bands = " | ".join(f"{lo:g}-{hi:g} Hz" if hi != float("inf") else f">{lo:g} Hz" for lo, hi in BANDS_HZ)
    print(f"| latents | frames/s | dims | {bands} | lag-1 autocorr |")
    print("|---|---:|---:|" + "---:|" * len(BANDS_HZ) + "---:|")
    for folder in args.folders:
        z, rate = load_latents(folder, args.clips)
        shares = " | ".join(f"{s:.2f}" for s in band_shares(z, rate))
        print(f"| {folder} | {rate:g} | {z.shape[1]} | {shares} | {lag1_autocorrelation(z):.2f} |")
    if args.readout_clips:
        print("\n| latents | envelope R^2 from local mean | from local log-power |\n|---|---:|---:|")
        for folder in args.folders:
            from_mean, from_power = envelope_readout(folder, args.readout_clips)
            print(f"| {folder} | {from_mean:.3f} | {from_power:.3f} |")


if __name__ == "__main__":
    main()
