"""The Oobleck autoencoder of Stable Audio Open: waveform <-> 64-channel latents at 1/2048 the rate.

Parameter names mirror stable-audio-tools (``encoder.layers.N...``, ``weight_g``/``weight_v``) so a
released ``model.safetensors`` loads with strict key matching and without renaming.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import AutoencoderConfig


class _WeightNormMixin:
    """Weight normalisation w = g * v / ||v|| (norm over all but dim 0), stored as ``weight_g``/``weight_v``.

    Our own small implementation instead of ``torch.nn.utils.weight_norm`` because it gives the
    checkpoint's exact key names on every torch version and lets the runtime fold ``w`` once.
    """

    weight_g: nn.Parameter
    weight_v: nn.Parameter

    def _init_weight_norm(self, weight: torch.Tensor) -> None:
        norm = torch.linalg.vector_norm(weight, dim=tuple(range(1, weight.dim())), keepdim=True)
        self.weight_g = nn.Parameter(norm.detach().clone())
        self.weight_v = nn.Parameter(weight.detach().clone())

    def normalized_weight(self) -> torch.Tensor:
        v = self.weight_v
        norm = torch.linalg.vector_norm(v, dim=tuple(range(1, v.dim())), keepdim=True)
        return v * (self.weight_g / norm)


class WNConv1d(_WeightNormMixin, nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, bias: bool = True):
        super().__init__()
        proto = nn.Conv1d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=bias)
        self._init_weight_norm(proto.weight)
        self.bias = nn.Parameter(proto.bias.detach().clone()) if bias else None
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.normalized_weight(), self.bias, self.stride, self.padding, self.dilation)


class WNConvTranspose1d(_WeightNormMixin, nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        proto = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride, padding)
        self._init_weight_norm(proto.weight)
        self.bias = nn.Parameter(proto.bias.detach().clone())
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, self.normalized_weight(), self.bias, self.stride, self.padding)


class SnakeBeta(nn.Module):
    """Snake activation x + sin^2(a x) / b with per-channel log-scale a, b (BigVGAN style)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.exp()[None, :, None]
        beta = self.beta.exp()[None, :, None]
        return x + torch.sin(x * alpha).pow(2) / (beta + 1e-9)


def _activation(use_snake: bool, channels: int) -> nn.Module:
    return SnakeBeta(channels) if use_snake else nn.ELU()


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, dilation: int, use_snake: bool):
        super().__init__()
        self.layers = nn.Sequential(
            _activation(use_snake, channels),
            WNConv1d(channels, channels, kernel_size=7, dilation=dilation, padding=3 * dilation),
            _activation(use_snake, channels),
            WNConv1d(channels, channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class EncoderBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, use_snake: bool):
        super().__init__()
        self.layers = nn.Sequential(
            ResidualUnit(in_channels, 1, use_snake),
            ResidualUnit(in_channels, 3, use_snake),
            ResidualUnit(in_channels, 9, use_snake),
            _activation(use_snake, in_channels),
            WNConv1d(in_channels, out_channels, kernel_size=2 * stride, stride=stride, padding=math.ceil(stride / 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DecoderBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, use_snake: bool):
        super().__init__()
        self.layers = nn.Sequential(
            _activation(use_snake, in_channels),
            WNConvTranspose1d(in_channels, out_channels, kernel_size=2 * stride, stride=stride,
                              padding=math.ceil(stride / 2)),
            ResidualUnit(out_channels, 1, use_snake),
            ResidualUnit(out_channels, 3, use_snake),
            ResidualUnit(out_channels, 9, use_snake),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OobleckEncoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        mults = [1] + list(cfg.c_mults)
        ch = cfg.channels
        layers: list[nn.Module] = [WNConv1d(cfg.audio_channels, mults[0] * ch, kernel_size=7, padding=3)]
        for i in range(len(mults) - 1):
            layers.append(EncoderBlock(mults[i] * ch, mults[i + 1] * ch, cfg.strides[i], cfg.use_snake))
        layers += [
            _activation(cfg.use_snake, mults[-1] * ch),
            WNConv1d(mults[-1] * ch, cfg.encoder_latent_dim, kernel_size=3, padding=1),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OobleckDecoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        mults = [1] + list(cfg.c_mults)
        ch = cfg.channels
        layers: list[nn.Module] = [WNConv1d(cfg.latent_dim, mults[-1] * ch, kernel_size=7, padding=3)]
        for i in range(len(mults) - 1, 0, -1):
            layers.append(DecoderBlock(mults[i] * ch, mults[i - 1] * ch, cfg.strides[i - 1], cfg.use_snake))
        layers += [
            _activation(cfg.use_snake, mults[0] * ch),
            WNConv1d(mults[0] * ch, cfg.audio_channels, kernel_size=7, padding=3, bias=False),
            nn.Tanh() if cfg.final_tanh else nn.Identity(),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OobleckAutoencoder(nn.Module):
    """Encoder + VAE bottleneck + decoder. ``scale`` is the pretransform's latent scaling factor."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = OobleckEncoder(cfg)
        self.decoder = OobleckDecoder(cfg)

    @property
    def downsampling_ratio(self) -> int:
        return self.cfg.downsampling_ratio

    def encode(self, audio: torch.Tensor, sample: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Waveform [B, C, T] -> latents [B, latent_dim, T / ratio].

        With ``sample=False`` the VAE mean is returned (deterministic, what caching latents wants);
        ``sample=True`` draws from the posterior as training the autoencoder does.
        """
        h = self.encoder(audio)
        if self.cfg.bottleneck == "vae":
            mean, scale = h.chunk(2, dim=1)
            if sample:
                std = F.softplus(scale) + 1e-4
                noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
                h = mean + std * noise
            else:
                h = mean
        return h / self.cfg.scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [B, latent_dim, L] -> waveform [B, C, L * ratio]."""
        return self.decoder(latents * self.cfg.scale)
