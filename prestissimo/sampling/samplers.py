"""Samplers as pure functions of a denoiser ``denoise(x, t) -> x0`` and a schedule of times.

``t`` passed to ``denoise`` is a [B] tensor; all samplers start from ``noise`` at t_0 = 1 (pure noise
for both objectives) and return the clean latent at t_N = 0. None of them touches global RNG state:
fresh noise comes from the explicit ``generator``.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

import torch

from ..models.config import FLOW_OBJECTIVES, Objective
from ..models.denoiser import alpha_sigma

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class StepCallback(Protocol):
    def __call__(self, step: int, total: int) -> None: ...


def _t_batch(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), float(t), device=x.device, dtype=x.dtype)


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Fresh noise drawn in fp32 on the generator's device, so a seed gives the same noise on any device/dtype."""
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device).to(device=x.device, dtype=x.dtype)


def sample_euler(denoise: DenoiseFn, noise: torch.Tensor, ts: torch.Tensor, objective: Objective = "rectified_flow",
                 callback: StepCallback | None = None) -> torch.Tensor:
    """Euler steps of the probability-flow ODE for rectified flow: x <- x + (t_next - t) v, v = (x - x0) / t."""
    if objective not in FLOW_OBJECTIVES:
        raise ValueError("the euler sampler integrates the rectified-flow ODE; use dpmpp-2m for v-objective models")
    x = noise
    n = len(ts) - 1
    for i in range(n):
        t, t_next = float(ts[i]), float(ts[i + 1])
        x0 = denoise(x, _t_batch(ts[i], x))
        v = (x - x0) / t
        x = x + (t_next - t) * v
        if callback:
            callback(i + 1, n)
    return x


def sample_pingpong(denoise: DenoiseFn, noise: torch.Tensor, ts: torch.Tensor, objective: Objective = "rectified_flow",
                    generator: torch.Generator | None = None, callback: StepCallback | None = None,
                    eta: float = 1.0) -> torch.Tensor:
    """Ping-pong sampling: denoise to x0, then re-noise to the next level with *fresh* noise.

    The sampler of ARC-post-trained models (Stable Audio Open Small). With one step it is exactly one
    denoiser call on the initial noise. ``eta`` < 1 re-noises with a mix of the noise the model saw in
    ``x`` (its prediction eps = (x - alpha x0) / sigma) and fresh noise, sqrt(1 - eta^2) eps + eta z,
    still unit variance: eta = 1 is ping-pong, eta = 0 the deterministic DDIM step. It trades prompt
    adherence (deterministic) against realism (fresh noise) on one model (docs/arc.md).
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    keep = math.sqrt(1.0 - eta * eta)
    x = noise
    n = len(ts) - 1
    for i in range(n):
        x0 = denoise(x, _t_batch(ts[i], x))
        t_next = ts[i + 1]
        if float(t_next) > 0:
            fresh = _randn_like(x0, generator)
            if eta < 1.0:
                alpha, sigma = alpha_sigma(ts[i], objective)
                predicted = (x - float(alpha) * x0) / float(sigma)
                fresh = keep * predicted + eta * fresh
            alpha, sigma = alpha_sigma(t_next, objective)
            x = float(alpha) * x0 + float(sigma) * fresh
        else:
            x = x0
        if callback:
            callback(i + 1, n)
    return x


def sample_dpmpp_2m(denoise: DenoiseFn, noise: torch.Tensor, ts: torch.Tensor, objective: Objective = "v",
                    callback: StepCallback | None = None) -> torch.Tensor:
    """DPM-Solver++(2M), data prediction, in log-SNR lambda = log(alpha / sigma).

    x_next = (sigma_next / sigma) x - alpha_next * expm1(-h) * D, h = lambda_next - lambda, with the
    second-order correction D = (1 + 1/(2r)) x0 - 1/(2r) x0_prev once a previous step exists. The
    first step (from pure noise, lambda = -inf) and the last one (to t = 0) are first order.
    """
    x = noise
    n = len(ts) - 1
    t64 = ts.to(torch.float64)
    alpha, sigma = alpha_sigma(t64, objective)
    lam = torch.log(alpha) - torch.log(sigma)  # -inf at t = 1, +inf at t = 0
    x0_prev = None
    for i in range(n):
        x0 = denoise(x, _t_batch(ts[i], x))
        if float(t64[i + 1]) == 0.0:
            x = x0
        elif x0_prev is None or not torch.isfinite(lam[i - 1]) or not torch.isfinite(lam[i]):
            h = lam[i + 1] - lam[i]
            x = float(sigma[i + 1] / sigma[i]) * x - float(alpha[i + 1] * torch.expm1(-h)) * x0
        else:
            h = lam[i + 1] - lam[i]
            r = float((lam[i] - lam[i - 1]) / h)
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
            x = float(sigma[i + 1] / sigma[i]) * x - float(alpha[i + 1] * torch.expm1(-h)) * d
        x0_prev = x0
        if callback:
            callback(i + 1, n)
    return x
