"""The Oobleck decoder (``models.autoencoder.OobleckDecoder``) in numpy, weight norm folded at load."""

from __future__ import annotations

import math

import numpy as np

from ...models.config import AutoencoderConfig
from .ops import Array, conv1d, conv_transpose1d, elu, snake_beta, weight_norm


class LiteDecoder:
    def __init__(self, cfg: AutoencoderConfig, weights: dict[str, Array]):
        """``weights``: the decoder's tensors without the ``pretransform.model.decoder.`` prefix, float32."""
        self.cfg = cfg
        self.w: dict[str, Array] = {}
        for key, value in weights.items():  # fold w = g v / ||v|| once
            if key.endswith(".weight_v"):
                stem = key[: -len(".weight_v")]
                self.w[stem + ".weight"] = weight_norm(weights[stem + ".weight_g"], value)
            elif not key.endswith(".weight_g"):
                self.w[key] = value

    def _act(self, prefix: str, x: Array) -> Array:
        if self.cfg.use_snake:
            return snake_beta(x, self.w[f"{prefix}.alpha"], self.w[f"{prefix}.beta"])
        return elu(x)

    def _conv(self, prefix: str, x: Array, **kwargs: int) -> Array:
        return conv1d(x, self.w[f"{prefix}.weight"], self.w.get(f"{prefix}.bias"), **kwargs)

    def _residual(self, prefix: str, x: Array, dilation: int) -> Array:
        h = self._act(f"{prefix}.layers.0", x)
        h = self._conv(f"{prefix}.layers.1", h, padding=3 * dilation, dilation=dilation)
        h = self._act(f"{prefix}.layers.2", h)
        return x + self._conv(f"{prefix}.layers.3", h)

    def __call__(self, latents: Array) -> Array:
        """Latents [B, latent_dim, L] (already multiplied by the pretransform scale) -> audio [B, C, L * ratio]."""
        cfg = self.cfg
        x = self._conv("layers.0", latents, padding=3)
        n_blocks = len(cfg.c_mults)
        for block in range(n_blocks):
            p = f"layers.{block + 1}.layers"
            stride = cfg.strides[n_blocks - 1 - block]
            x = self._act(f"{p}.0", x)
            x = conv_transpose1d(x, self.w[f"{p}.1.weight"], self.w[f"{p}.1.bias"], stride=stride,
                                 padding=math.ceil(stride / 2))
            for unit, dilation in zip((2, 3, 4), (1, 3, 9)):
                x = self._residual(f"{p}.{unit}", x, dilation)
        x = self._act(f"layers.{n_blocks + 1}", x)
        x = self._conv(f"layers.{n_blocks + 2}", x, padding=3)
        return np.tanh(x) if cfg.final_tanh else x
