"""Diffusion objectives: how noise level t maps to signal/noise scales and network output to a clean estimate.

Both released objectives have the DiT predict a velocity:
- ``rectified_flow`` / ``rf_denoiser`` (Stable Audio Open Small): x_t = (1 - t) x0 + t eps, v = eps - x0, x0 = x_t - t v.
- ``v`` (Stable Audio Open 1.0): x_t = cos(pi t / 2) x0 + sin(pi t / 2) eps, v = alpha eps - sigma x0,
  x0 = alpha x_t - sigma v.
- ``edm`` (Karras et al. 2022 preconditioning, for EDM-family teachers as Presto distils): the state is the
  v objective's x_t = cos x0 + sin eps, i.e. EDM's x0 + s eps scaled by alpha with s = tan(pi t / 2); the
  network sees c_in x_ve and c_noise = ln(s) / 4 and x0 = c_skip x_ve + c_out F.
Samplers work on the clean estimate x0 and on log-SNR lambda = log(alpha / sigma), so one sampler
serves every objective.
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
    if objective in ("v", "edm"):
        return torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)
    raise ValueError(f"unknown objective {objective!r}")


def t_from_logsnr(lam: torch.Tensor, objective: Objective) -> torch.Tensor:
    """Inverse of lambda(t) = log(alpha(t) / sigma(t))."""
    if objective in FLOW_OBJECTIVES:
        return torch.sigmoid(-lam)
    if objective in ("v", "edm"):
        return torch.atan(torch.exp(-lam)) * 2 / math.pi
    raise ValueError(f"unknown objective {objective!r}")


def edm_sigma(t: torch.Tensor) -> torch.Tensor:
    """EDM noise level s = sigma / alpha of time t (t = atan(s) 2 / pi)."""
    return torch.tan(t * math.pi / 2)


def edm_t(sigma: torch.Tensor) -> torch.Tensor:
    return torch.atan(sigma) * 2 / math.pi


def edm_coefficients(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, ...]:
    """(c_skip, c_out, c_in, c_noise) of EDM's preconditioning at noise level sigma."""
    total = sigma**2 + sigma_data**2
    return sigma_data**2 / total, sigma * sigma_data / total.sqrt(), 1 / total.sqrt(), sigma.log() / 4


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
    keys/values. ``global_cond`` is the concatenated global vector (seconds, and a pooled prompt where the
    model takes one); ``global_prompt_mask`` [D] marks its prompt-derived dims, which the unconditional
    input of classifier-free guidance zeroes like the context.
    """

    context: torch.Tensor | None
    global_cond: torch.Tensor | None
    context_kv: list | None = None
    global_prompt_mask: torch.Tensor | None = None

    def without_prompt(self) -> torch.Tensor | None:
        """global_cond with the prompt-derived dims zeroed (the unconditional global vector)."""
        if self.global_cond is None or self.global_prompt_mask is None:
            return self.global_cond
        return self.global_cond.masked_fill(self.global_prompt_mask, 0.0)

    def rows(self, index: list[int]) -> "Conditioning":
        """The conditioning of some items of the batch (cached keys/values are not carried over)."""
        return Conditioning(context=None if self.context is None else self.context[index],
                            global_cond=None if self.global_cond is None else self.global_cond[index],
                            global_prompt_mask=self.global_prompt_mask)

    def batch_size(self) -> int:
        for t in (self.context, self.global_cond):
            if t is not None:
                return t.shape[0]
        raise ValueError("empty conditioning")


class Denoiser(nn.Module):
    """DiT + objective: (x_t, t, conditioning) -> x0 estimate. The unit every sampler calls."""

    def __init__(self, dit: DiffusionTransformer, objective: Objective, sigma_data: float = 0.5):
        super().__init__()
        self.model = dit  # ``model.model.*`` keys in the combined checkpoint, as stable-audio-tools writes them
        self.objective = objective
        self.sigma_data = sigma_data

    def velocity(self, x: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """The raw network output (a velocity for v / RF models, EDM's F for edm)."""
        return self.model(x, t, global_cond=cond.global_cond, context=cond.context, context_kv=cond.context_kv)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        if self.objective == "edm":
            return self._edm_x0(x, t, cond)
        return x0_from_velocity(x, t, self.velocity(x, t, cond), self.objective)

    def _edm_x0(self, x: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        shape = (-1,) + (1,) * (x.dim() - 1)
        t = t.clamp(max=edm_t(torch.tensor(1e3)).item())  # t = 1 is sigma = inf
        alpha = torch.cos(t * math.pi / 2).view(shape)
        sigma = edm_sigma(t)
        c_skip, c_out, c_in, c_noise = edm_coefficients(sigma, self.sigma_data)
        x_ve = x / alpha
        out = self.model(x_ve * c_in.view(shape), c_noise, global_cond=cond.global_cond, context=cond.context,
                         context_kv=cond.context_kv)
        return c_skip.view(shape) * x_ve + c_out.view(shape) * out
