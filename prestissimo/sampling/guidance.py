"""Classifier-free guidance as a wrapper around a conditional denoiser."""

from __future__ import annotations

from typing import Callable

import torch

from ..models.config import Objective
from ..models.denoiser import Conditioning, add_noise

CondDenoiseFn = Callable[[torch.Tensor, torch.Tensor, Conditioning], torch.Tensor]


def null_conditioning(cond: Conditioning) -> Conditioning:
    """The unconditional input of stable-audio-tools: zero cross-attention context, same global (seconds) embedding.

    The context is zeroed *before* embedding (the DiT's to_cond_embed of zeros is zero for the
    bias-free MLP), so the embedded context is zero too. A pooled prompt in the global vector is zeroed
    as well (``global_prompt_mask``), so that nothing of the prompt reaches the unconditional pass.
    """
    ctx = None if cond.context is None else torch.zeros_like(cond.context)
    return Conditioning(context=ctx, global_cond=cond.without_prompt(), global_prompt_mask=cond.global_prompt_mask)


def cfg_denoiser(denoise: CondDenoiseFn, cond: Conditioning, uncond: Conditioning | None,
                 scale: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Return denoise(x, t) = uncond + scale * (cond - uncond), batching both passes into one call.

    At scale 1 (and for models that need no guidance) there is no unconditional pass at all.
    CFG on x0 equals CFG on the velocity because x0 is affine in v with the same x.
    """
    if scale == 1.0 or uncond is None:
        return lambda x, t: denoise(x, t, cond)

    both = Conditioning(
        context=_cat(cond.context, uncond.context),
        global_cond=_cat(cond.global_cond, uncond.global_cond),
        context_kv=_cat_kv(cond.context_kv, uncond.context_kv),
        global_prompt_mask=cond.global_prompt_mask,
    )

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = denoise(torch.cat([x, x]), torch.cat([t, t]), both)
        c, u = out.chunk(2)
        return u + scale * (c - u)

    return guided


def _cat(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    return None if a is None or b is None else torch.cat([a, b])


def _cat_kv(a: list | None, b: list | None) -> list | None:
    if a is None or b is None:
        return None
    return [None if ka is None else (torch.cat([ka[0], kb[0]]), torch.cat([ka[1], kb[1]])) for ka, kb in zip(a, b)]


def hold_channels(denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], values: torch.Tensor,
                  noise: torch.Tensor, start: int, objective: Objective
                  ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """denoise(x, t) with channels ``start:`` held to ``values`` (inpainting by replacement, along channels):
    those channels of x are replaced by ``values`` noised to t with the fixed ``noise``, and those of the
    prediction by ``values``, so every sampler keeps them on the path from that noise to ``values``."""
    def held(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        noised = add_noise(values.to(x), noise.to(x), t, objective)
        x0 = denoise(torch.cat([x[:, :start], noised], 1), t)
        return torch.cat([x0[:, :start], values.to(x0)], 1)

    return held
