"""Diffusion objectives: how noise level t maps to signal/noise scales and network output to a clean estimate.

Both released objectives have the DiT predict a velocity:
- ``rectified_flow`` / ``rf_denoiser`` (Stable Audio Open Small): x_t = (1 - t) x0 + t eps, v = eps - x0, x0 = x_t - t v.
- ``v`` (Stable Audio Open 1.0): x_t = cos(pi t / 2) x0 + sin(pi t / 2) eps, v = alpha eps - sigma x0,
  x0 = alpha x_t - sigma v.
Samplers work on the clean estimate x0 and on log-SNR lambda = log(alpha / sigma), so one sampler
serves both objectives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .config import FLOW_OBJECTIVES, Objective
from .dit import DiffusionTransformer


def alpha_sigma(t: torch.Tensor, objective: Objective) -> tuple[torch.Tensor, torch.Tensor]:
    """Signal and noise scales at time t in [0, 1] (t = 1 is pure noise)."""
    if objective in FLOW_OBJECTIVES:
        return 1 - t, t
    if objective == "v":
        return torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)
    raise ValueError(f"unknown objective {objective!r}")


def t_from_logsnr(lam: torch.Tensor, objective: Objective) -> torch.Tensor:
    """Inverse of lambda(t) = log(alpha(t) / sigma(t))."""
    if objective in FLOW_OBJECTIVES:
        return torch.sigmoid(-lam)
    if objective == "v":
        return torch.atan(torch.exp(-lam)) * 2 / math.pi
    raise ValueError(f"unknown objective {objective!r}")


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, objective: Objective) -> torch.Tensor:
    """x_t for a batch of times t [B]."""
    alpha, sigma = alpha_sigma(t, objective)
    shape = (-1,) + (1,) * (x0.dim() - 1)
    return alpha.view(shape) * x0 + sigma.view(shape) * noise


def x0_from_velocity(x: torch.Tensor, t: torch.Tensor, v: torch.Tensor, objective: Objective) -> torch.Tensor:
    """Clean estimate from the network's velocity output."""
    shape = (-1,) + (1,) * (x.dim() - 1)
    if objective in FLOW_OBJECTIVES:
        return x - t.view(shape) * v
    alpha, sigma = alpha_sigma(t, objective)
    return alpha.view(shape) * x - sigma.view(shape) * v


@dataclass
class Conditioning:
    """Everything the DiT needs besides x and t, prepared once per generation.

    ``context`` is the embedded cross-attention context; ``context_kv`` optionally caches its per-layer
    keys/values. ``global_cond`` is the concatenated global embedding (seconds).
    """

    context: torch.Tensor | None
    global_cond: torch.Tensor | None
    context_kv: list | None = None

    def batch_size(self) -> int:
        for t in (self.context, self.global_cond):
            if t is not None:
                return t.shape[0]
        raise ValueError("empty conditioning")


class Denoiser(nn.Module):
    """DiT + objective: (x_t, t, conditioning) -> x0 estimate. The unit every sampler calls."""

    def __init__(self, dit: DiffusionTransformer, objective: Objective):
        super().__init__()
        self.model = dit  # ``model.model.*`` keys in the combined checkpoint, as stable-audio-tools writes them
        self.objective = objective

    def velocity(self, x: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        return self.model(x, t, global_cond=cond.global_cond, context=cond.context, context_kv=cond.context_kv)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        return x0_from_velocity(x, t, self.velocity(x, t, cond), self.objective)
