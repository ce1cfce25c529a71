"""The diffusion transformer (DiT) of Stable Audio Open, conditioned on time, text tokens and seconds."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import DiTConfig
from .transformer import ContinuousTransformer


class FourierFeatures(nn.Module):
    """Random Fourier features of the diffusion time, [cos, sin] of 2*pi*t*w (learned w)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features // 2, in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = 2 * math.pi * x @ self.weight.T
        return torch.cat((f.cos(), f.sin()), dim=-1)


def _mlp(dim_in: int, dim_out: int, bias: bool) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim_out, bias=bias), nn.SiLU(), nn.Linear(dim_out, dim_out, bias=bias))


class DiffusionTransformer(nn.Module):
    """Raw network output (velocity for both released objectives) from latents, time and conditioning.

    Global conditioning (seconds) plus the time embedding is either prepended as one token
    ("prepend", both released models) or modulates each block ("adaLN").
    """

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        self.timestep_features = FourierFeatures(1, 256)
        self.to_timestep_embed = _mlp(256, dim, bias=True)
        if cfg.cond_token_dim > 0:
            self.to_cond_embed = nn.Sequential(
                nn.Linear(cfg.cond_token_dim, cfg.cond_embed_dim, bias=False), nn.SiLU(),
                nn.Linear(cfg.cond_embed_dim, cfg.cond_embed_dim, bias=False),
            )
        if cfg.global_cond_dim > 0:
            global_embed_dim = dim if cfg.project_global_cond else cfg.global_cond_dim
            self.to_global_embed = nn.Sequential(
                nn.Linear(cfg.global_cond_dim, global_embed_dim, bias=False), nn.SiLU(),
                nn.Linear(global_embed_dim, global_embed_dim, bias=False),
            )
        self.transformer = ContinuousTransformer(
            dim=dim, depth=cfg.depth, dim_heads=cfg.dim_heads, dim_in=cfg.io_channels * cfg.patch_size,
            dim_out=cfg.io_channels * cfg.patch_size,
            cross_attend=cfg.cond_token_dim > 0, cond_token_dim=cfg.cond_embed_dim if cfg.cond_token_dim else None,
            qk_norm=cfg.qk_norm, ff_mult=cfg.ff_mult,
            global_cond_dim=dim if cfg.global_cond_type == "adaLN" else None,
            final_cross_attn_ix=cfg.final_cross_attn_ix, sinusoidal_pos_emb=cfg.sinusoidal_pos_emb,
        )
        self.preprocess_conv = nn.Conv1d(cfg.io_channels, cfg.io_channels, 1, bias=False)
        self.postprocess_conv = nn.Conv1d(cfg.io_channels, cfg.io_channels, 1, bias=False)
        # Zero-initialised residual convs, as in the reference: a fresh DiT starts near identity there.
        nn.init.zeros_(self.preprocess_conv.weight)
        nn.init.zeros_(self.postprocess_conv.weight)

    def embed_context(self, cross_attn_cond: torch.Tensor) -> torch.Tensor:
        """Project conditioning tokens once; reusable across all sampling steps."""
        return self.to_cond_embed(cross_attn_cond)

    def context_kv(self, context: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
        """Per-layer cross-attention keys/values of an embedded context, computed once per generation."""
        return [layer.cross_attn.project_context(context) if layer.cross_attend else None
                for layer in self.transformer.layers]

    def forward(self, x: torch.Tensor, t: torch.Tensor, cross_attn_cond: torch.Tensor | None = None,
                global_cond: torch.Tensor | None = None, *, context: torch.Tensor | None = None,
                context_kv: list | None = None, exit_layer_ix: int | None = None) -> torch.Tensor:
        """x [B, C, L], t [B] -> output [B, C, L].

        Pass raw ``cross_attn_cond`` [B, Tc, cond_token_dim], or an already embedded ``context``
        (from :meth:`embed_context`) or its per-layer ``context_kv`` to skip recomputing them per step.
        """
        if context is None and context_kv is None and cross_attn_cond is not None:
            context = self.embed_context(cross_attn_cond)
        global_embed = self.to_global_embed(global_cond) if global_cond is not None else None
        time_embed = self.to_timestep_embed(self.timestep_features(t[:, None].to(x.dtype)))
        global_embed = time_embed if global_embed is None else global_embed + time_embed

        prepend = None
        if self.cfg.global_cond_type == "prepend":
            prepend = global_embed.unsqueeze(1)
        x = self.preprocess_conv(x) + x
        patch = self.cfg.patch_size
        if x.shape[-1] % patch:
            raise ValueError(f"latent length {x.shape[-1]} is not a multiple of the DiT patch_size {patch}")
        # [B, C, T*P] -> [B, T, C*P]: channel-major inside a token, as stable-audio-tools folds patches
        tokens = x.reshape(x.shape[0], x.shape[1], -1, patch).permute(0, 2, 1, 3).flatten(2)
        h = self.transformer(
            tokens, prepend=prepend, context=context,
            global_cond=global_embed if self.cfg.global_cond_type == "adaLN" else None,
            context_kv=context_kv, exit_layer_ix=exit_layer_ix,
        )
        if exit_layer_ix is not None:
            return h
        n_prepend = 0 if prepend is None else prepend.shape[1]
        out = h[:, n_prepend:]  # [B, T, C*P] -> [B, C, T*P]
        out = out.reshape(out.shape[0], out.shape[1], -1, patch).permute(0, 2, 1, 3).flatten(2)
        return self.postprocess_conv(out) + out
