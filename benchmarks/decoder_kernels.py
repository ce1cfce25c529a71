"""Micro-benchmark behind docs/runtime.md: each decoder kernel choice against its baseline, same run.

    python benchmarks/decoder_kernels.py [--length 65536]

Prints a table: baseline time, our time, ratio. Shapes are those of the Oobleck decoder's top rate.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from prestissimo.models.autoencoder import WNConvTranspose1d
from prestissimo.runtime.decoder import PolyphaseUpsample, compiled_snake, snake


def best_time(fn, runs: int = 3) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--length", type=int, default=65536)
    args = parser.parse_args()
    L, C = args.length, 128
    g = torch.Generator().manual_seed(0)
    rows = []
    with torch.no_grad():
        x = torch.randn(1, C, L, generator=g)
        w = torch.randn(C, C, 7, generator=g) / 30
        x4 = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        w4 = w.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        rows.append(("conv k7 dil 9: conv1d -> channels-last conv2d",
                     best_time(lambda: F.conv1d(x, w, padding=27, dilation=9)),
                     best_time(lambda: F.conv2d(x4, w4, padding=(0, 27), dilation=(1, 9)))))
        up = WNConvTranspose1d(2 * C, C, kernel_size=4, stride=2, padding=1)
        xu = torch.randn(1, 2 * C, L // 2, generator=g)
        poly = PolyphaseUpsample(up)
        xu4 = xu.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        wu = up.normalized_weight().detach()
        rows.append(("upsample x2: conv_transpose1d -> polyphase conv",
                     best_time(lambda: F.conv_transpose1d(xu, wu, up.bias, 2, 1)),
                     best_time(lambda: poly(xu4))))
        alpha, inv_beta = torch.rand(1, C, 1, 1) + 0.5, torch.rand(1, C, 1, 1) + 0.5
        fused = compiled_snake()
        rows.append(("Snake: eager -> torch.compile fused",
                     best_time(lambda: snake(x4, alpha, inv_beta)), best_time(lambda: fused(x4, alpha, inv_beta))))
        a = torch.randn(1024, 1024, generator=g)
        ab = a.bfloat16()
        rows.append(("matmul 1024^3: fp32 -> bf16 (>1x means bf16 is slower)",
                     best_time(lambda: a @ a), best_time(lambda: ab @ ab, runs=1)))
    print(f"decoder kernels, length {L}, {torch.get_num_threads()} threads, best of 3\n")
    print(f"| {'kernel':58} | baseline s | ours s | speedup |")
    print(f"|{'-' * 60}|------------|--------|---------|")
    for name, base, ours in rows:
        print(f"| {name:58} | {base:10.4f} | {ours:6.4f} | {base / ours:6.2f}x |")


if __name__ == "__main__":
    main()
