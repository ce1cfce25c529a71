"""What this machine can do: measured matmul peaks per precision, and whether bf16 is worth using.

Measured, not assumed: CPUs without AVX-512 BF16 / AMX run bf16 matmuls through slow fallback
kernels (we have seen 0.3 GFLOP/s for bf16 against 130 for fp32 on an AVX2-only machine).
"""

from __future__ import annotations

import functools
import logging
import time
import warnings

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(dtype: torch.dtype, device: str | torch.device = "cpu", n: int = 1024,
                       budget_s: float = 1.0) -> float:
    """Best observed GFLOP/s (GOP/s for int8) of an n x n matmul, within a time budget."""
    device = torch.device(device)
    if dtype == torch.int8:
        return _int8_linear_peak(n, budget_s)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best, start, runs = float("inf"), time.perf_counter(), 0
    while runs < 3 or (time.perf_counter() - start < budget_s and runs < 50):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
        runs += 1
        if best > budget_s:  # hopelessly slow path: one run tells enough
            break
    return 2 * n**3 / best / 1e9


def _int8_linear_peak(n: int, budget_s: float) -> float:
    from .quantize import quantize_linear_int8

    layer = quantize_linear_int8(torch.nn.Sequential(torch.nn.Linear(n, n, bias=False)))
    x = torch.randn(n, n)
    best, start, runs = float("inf"), time.perf_counter(), 0
    with torch.no_grad():
        while runs < 3 or (time.perf_counter() - start < budget_s and runs < 50):
            t0 = time.perf_counter()
            layer(x)
            best = min(best, time.perf_counter() - t0)
            runs += 1
    return 2 * n**3 / best / 1e9


@functools.lru_cache(maxsize=None)
def bf16_speedup(device: str = "cpu") -> float:
    """bf16 / fp32 matmul throughput on this device (> 1 means bf16 pays off)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp32 = matmul_peak_gflops(torch.float32, device, n=512, budget_s=0.3)
        bf16 = matmul_peak_gflops(torch.bfloat16, device, n=512, budget_s=0.3)
    return bf16 / fp32


def warn_if_bf16_is_slow(device: torch.device | str, log: logging.Logger) -> None:
    """On a CPU without bf16 instructions, bf16 runs many times slower than fp32: say so before the
    work starts instead of letting a run crawl. GPUs are not checked."""
    if torch.device(device).type != "cpu":
        return
    ratio = bf16_speedup("cpu")
    if ratio < 1.0:
        log.warning("bf16 matmuls run %.2fx the speed of fp32 on this CPU (no AVX-512 BF16/AMX): "
                    "bf16 will be slower, use fp32 (or int8 for inference)", ratio)


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """A training precision as run: "auto" is bf16 where bf16 matmuls beat fp32 on ``device`` (GPUs
    with bf16, CPUs with AVX-512 BF16 / AMX), else fp32, so one recipe is fast on both kinds of CPU
    (bf16 matmuls run about 3x faster than fp32 on an AVX-512 BF16 CPU; on an AVX2-only one a bf16
    autocast linear layer ran 7.7x slower). Other values are returned as given."""
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if bf16_speedup("cpu") > 1.0 else "fp32"
