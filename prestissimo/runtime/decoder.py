"""A fast inference copy of the Oobleck decoder.

Why the reference decode is slow on CPU (measured by benchmarks/decoder_kernels.py, see
docs/runtime.md): it recomputes every weight norm per call, runs Snake as several elementwise passes
over tensors of up to 128 channels x 524k samples, uses the plain conv1d path, which oneDNN runs
slower than the same convolution as a channels-last conv2d, and a transposed-conv path slower still.
This copy folds weight norm into plain kernels once,
keeps activations in a channels-last [B, C, 1, T] layout from end to end, runs each upsampling
transposed conv as an ordinary conv (polyphase form), and evaluates Snake as
``addcmul(x, 1/beta, sin(alpha x)^2)`` with alpha and 1/beta precomputed, optionally fused into one
pass by torch.compile. It is built from a trained decoder and holds no trainable state: rebuild it
after changing the weights.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..models.autoencoder import OobleckDecoder, ResidualUnit, SnakeBeta, WNConv1d, WNConvTranspose1d


def snake(x: torch.Tensor, alpha: torch.Tensor, inv_beta: torch.Tensor) -> torch.Tensor:
    """x + sin(alpha x)^2 / beta with alpha and 1 / beta precomputed."""
    return torch.addcmul(x, inv_beta, torch.sin(x * alpha).square())


def compiled_snake() -> Callable:
    """Snake fused into one pass by torch.compile (dynamic shapes: one compilation serves every layer).

    In eager mode Snake is four memory passes over tensors of up to 128 x 524k samples; fused it ran
    3.2x faster here (benchmarks/decoder_kernels.py). Falls back to eager when no compiler works here.
    """
    try:
        fn = torch.compile(snake, dynamic=True)
        probe = torch.randn(1, 4, 1, 16).contiguous(memory_format=torch.channels_last)
        ones = torch.ones(1, 4, 1, 1)
        if not torch.allclose(fn(probe, ones, ones), snake(probe, ones, ones), atol=1e-5):
            raise RuntimeError("compiled Snake disagrees with eager")
        return fn
    except Exception as e:  # inductor raises many error types; eager is always correct
        warnings.warn(f"could not compile Snake ({type(e).__name__}: {e}); using the eager version", stacklevel=2)
        return snake


class FastSnake(nn.Module):
    def __init__(self, module: SnakeBeta, fn: Callable = snake):
        super().__init__()
        self.register_buffer("alpha", module.alpha.detach().exp().view(1, -1, 1, 1).clone())
        self.register_buffer("inv_beta", (1.0 / (module.beta.detach().exp() + 1e-9)).view(1, -1, 1, 1).clone())
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, self.alpha, self.inv_beta)


class FastConv(nn.Module):
    """A weight-norm conv folded into a channels-last conv2d over [B, C, 1, T]."""

    def __init__(self, conv: WNConv1d):
        super().__init__()
        weight = conv.normalized_weight().detach().unsqueeze(2)
        self.register_buffer("weight", weight.contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self.stride, self.padding = (1, conv.stride), (0, conv.padding)
        self.dilation = (1, conv.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)


class PolyphaseUpsample(nn.Module):
    """The decoder's transposed conv (kernel 2s, stride s, padding s/2) as one ordinary 2-tap conv.

    Output phase q of a stride-s transposed conv with kernel 2s is x[n] w[q] + x[n-1] w[q+s]: a
    regular convolution with s * C_out channels. Ordering those channels phase-major makes the
    channels-last result *already interleaved in memory*, so the upsampled signal is a free view.
    oneDNN runs this regular conv several times faster than its transposed-conv path on CPU.
    """

    def __init__(self, conv: WNConvTranspose1d):
        super().__init__()
        w = conv.normalized_weight().detach()  # [C_in, C_out, 2s]
        c_in, c_out, k = w.shape
        s = conv.stride
        if k != 2 * s or conv.padding != s // 2 or s % 2:
            raise ValueError("polyphase form needs kernel 2s, stride s even, padding s/2")
        taps = torch.stack([w[:, :, s:], w[:, :, :s]], dim=-1)  # [C_in, C_out, s(q), 2]: x[n-1], x[n]
        weight = taps.permute(2, 1, 0, 3).reshape(s * c_out, c_in, 1, 2)  # channel q * C_out + o
        self.register_buffer("weight", weight.contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", conv.bias.detach().repeat(s))
        self.s, self.c_out = s, c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, _, length = x.shape
        y = F.conv2d(x, self.weight, self.bias, padding=(0, 1))  # [B, s*C_out, 1, L+1], channels-last
        y = y.permute(0, 2, 3, 1).reshape(b, 1, (length + 1) * self.s, self.c_out).permute(0, 3, 1, 2)
        p = self.s // 2
        return y[..., p:p + length * self.s]


class FastResidual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _convert(module: nn.Module, snake_fn: Callable) -> nn.Module:
    if isinstance(module, SnakeBeta):
        return FastSnake(module, snake_fn)
    if isinstance(module, WNConv1d):
        return FastConv(module)
    if isinstance(module, WNConvTranspose1d):
        return PolyphaseUpsample(module)
    if isinstance(module, ResidualUnit):
        return FastResidual(_convert(module.layers, snake_fn))
    if isinstance(module, nn.Sequential):
        return nn.Sequential(*(_convert(m, snake_fn) for m in module))
    if isinstance(module, (nn.Identity, nn.Tanh, nn.ELU)):
        return module
    if hasattr(module, "layers"):  # Encoder/Decoder blocks
        return _convert(module.layers, snake_fn)
    raise TypeError(f"no fast equivalent for {type(module).__name__}")


class FastDecoder(nn.Module):
    """Same function as the OobleckDecoder it was built from, [B, latent, L] -> [B, channels, L * ratio]."""

    def __init__(self, decoder: OobleckDecoder, dtype: torch.dtype | None = None, fuse_snake: bool = False):
        super().__init__()
        self.net = _convert(decoder.layers, compiled_snake() if fuse_snake else snake)
        if dtype is not None:
            self.to(dtype)

    @torch.no_grad()
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        return self.net(x).squeeze(2).contiguous()


def receptive_margin(decoder: nn.Module, latent_dim: int, probe_frames: int = 48) -> int:
    """Latent frames on each side that influence a decoded frame, found by perturbing one latent frame."""
    ref = next(itertools.chain(decoder.parameters(), decoder.buffers()))
    z = torch.zeros(1, latent_dim, probe_frames, device=ref.device, dtype=ref.dtype)
    base = decoder(z)
    z[:, :, probe_frames // 2] = 1.0
    diff = (decoder(z) - base).abs().amax(dim=(0, 1))
    ratio = base.shape[-1] // probe_frames
    changed = torch.nonzero(diff.view(probe_frames, ratio).amax(dim=1) > 0).flatten()
    return int(max(probe_frames // 2 - changed.min(), changed.max() - probe_frames // 2)) + 1


def decode_chunked(decode, latents: torch.Tensor, chunk_frames: int, margin: int) -> torch.Tensor:
    """Decode long latents window by window with ``margin`` frames of context on each side.

    With a margin at least the decoder's receptive field the result equals a whole decode (the
    decoder is convolutional), while peak memory is bounded by the chunk size instead of the clip.
    """
    total = latents.shape[-1]
    if chunk_frames >= total:
        return decode(latents)
    pieces, ratio = [], None
    for start in range(0, total, chunk_frames):
        end = min(start + chunk_frames, total)
        lo, hi = max(0, start - margin), min(total, end + margin)
        audio = decode(latents[..., lo:hi])
        ratio = audio.shape[-1] // (hi - lo)
        pieces.append(audio[..., (start - lo) * ratio:(end - lo) * ratio])
    return torch.cat(pieces, dim=-1)
