"""Diffusion training objectives as pure functions: noise-level distributions and the per-objective
denoising losses (rectified flow, v-diffusion, EDM), plus classifier-free-guidance dropout."""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from prestissimo.models.denoiser import Conditioning, add_noise, alpha_sigma, edm_t, t_from_logsnr

NOISE_DISTRIBUTIONS = ("uniform", "logit_normal", "truncated_logit_normal", "logsnr_uniform")


def sample_noise_levels(u: torch.Tensor, distribution: str = "logit_normal", mean: float = 0.0, std: float = 1.0,
                        t_min: float = 0.0, t_max: float = 1.0, logsnr_range: tuple[float, float] = (-6.0, 2.0),
                        objective: str = "rectified_flow") -> torch.Tensor:
    """Map uniform numbers u in (0, 1) to times t in [0, 1] (t = 1 is pure noise).

    uniform: t = u.  logit_normal: t = sigmoid(mean + std * Phi^-1(u)).  truncated_logit_normal: the
    same restricted to [t_min, t_max] (by inverse CDF, so no rejection).  logsnr_uniform: lambda
    uniform in logsnr_range, mapped through the objective's t(lambda).
    Inverse-CDF sampling keeps one uniform number per item, so randomness stays per-item.
    """
    u = u.clamp(1e-6, 1 - 1e-6)
    normal = torch.distributions.Normal(0.0, 1.0)
    if distribution == "uniform":
        return t_min + (t_max - t_min) * u
    if distribution == "logit_normal":
        return torch.sigmoid(mean + std * normal.icdf(u))
    if distribution == "truncated_logit_normal":
        lo = normal.cdf(torch.tensor((math.log(t_min / (1 - t_min)) - mean) / std)) if t_min > 0 else torch.tensor(0.0)
        hi = normal.cdf(torch.tensor((math.log(t_max / (1 - t_max)) - mean) / std)) if t_max < 1 else torch.tensor(1.0)
        z = normal.icdf((lo + (hi - lo) * u).clamp(1e-6, 1 - 1e-6))
        return torch.sigmoid(mean + std * z).clamp(t_min, t_max)
    if distribution == "logsnr_uniform":
        lo, hi = logsnr_range
        return t_from_logsnr(hi - (hi - lo) * u, objective)
    raise ValueError(f"unknown noise distribution {distribution!r} (choose from {NOISE_DISTRIBUTIONS})")


def cfg_dropout(cond: Conditioning, drop: torch.Tensor) -> Conditioning:
    """Zero the cross-attention context (and any pooled prompt in the global vector) of items where
    `drop` [B] is True: the unconditional input that classifier-free guidance uses at sampling time
    (seconds conditioning is kept)."""
    if not bool(drop.any()):
        return cond
    context = cond.context
    if context is not None:
        context = context * (~drop).to(context.dtype).view(-1, 1, 1)
    global_cond = cond.global_cond
    if global_cond is not None:
        global_cond = torch.where(drop.view(-1, 1), cond.without_prompt(), global_cond)
    return replace(cond, context=context, global_cond=global_cond)


def diffusion_loss(denoiser: torch.nn.Module, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
                   cond: Conditioning, objective: str, sigma_data: float = 0.5) -> torch.Tensor:
    """Per-item losses [B] of one objective.

    rectified_flow / rf_denoiser: ||v - (eps - x0)||^2 at x_t = (1 - t) x0 + t eps.
    v: ||v - (alpha eps - sigma x0)||^2 at x_t = alpha x0 + sigma eps.
    edm: lambda(s) ||D(x_t) - x0||^2 with lambda = (s^2 + sd^2) / (s sd)^2, s = tan(pi t / 2); t comes from
    EDM's log-normal sigma via `edm_t` (see `edm_noise_levels`).
    """
    dims = tuple(range(1, x0.dim()))
    x_t = add_noise(x0, noise, t, objective)
    if objective == "edm":
        sigma = torch.tan(t * math.pi / 2)
        weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
        return weight * ((denoiser(x_t, t, cond) - x0) ** 2).mean(dims)
    v = denoiser.velocity(x_t, t, cond)
    if objective in ("rectified_flow", "rf_denoiser"):
        target = noise - x0
    elif objective == "v":
        alpha, sigma = alpha_sigma(t, objective)
        shape = (-1,) + (1,) * (x0.dim() - 1)
        target = alpha.view(shape) * noise - sigma.view(shape) * x0
    else:
        raise ValueError(f"unknown objective {objective!r}")
    return ((v - target) ** 2).mean(dims)


def edm_noise_levels(u: torch.Tensor, p_mean: float = -1.2, p_std: float = 1.2) -> torch.Tensor:
    """EDM's training distribution ln(sigma) ~ N(p_mean, p_std^2), returned as times t."""
    z = torch.distributions.Normal(0.0, 1.0).icdf(u.clamp(1e-6, 1 - 1e-6))
    return edm_t(torch.exp(p_mean + p_std * z))
