"""The numpy layers of the torch-free engine: pure functions of arrays, matching torch.nn.functional.

Everything is float32 [batch, ..., features] (linear layers) or [batch, channels, time] (convolutions),
with weights in torch's layout so a state dict is used as stored.
"""

from __future__ import annotations

import math

import numpy as np

Array = np.ndarray


def linear(x: Array, weight: Array, bias: Array | None = None) -> Array:
    """torch.nn.functional.linear: x @ W^T + b."""
    y = x @ weight.T
    return y if bias is None else y + bias


def silu(x: Array) -> Array:
    # In place on one temporary: elementwise passes were about a third of a generation's time (docs/runtime.md).
    d = np.exp(-x)
    d += 1.0
    return np.divide(x, d, out=d)


def sigmoid(x: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-x))


def gelu(x: Array) -> Array:
    """Exact (erf) GELU, BERT's "gelu"; numpy has no erf, so it is vectorised math.erf."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def gelu_tanh(x: Array) -> Array:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def relu(x: Array) -> Array:
    return np.maximum(x, 0)


def _erf(x: Array) -> Array:
    # Abramowitz-Stegun 7.1.26 is only 1e-7 accurate, enough for float32 activations; a ufunc keeps it fast.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (sign * (1.0 - poly * np.exp(-a * a))).astype(x.dtype, copy=False)


def layer_norm(x: Array, weight: Array | None, bias: Array | None, eps: float) -> Array:
    y = x - x.mean(-1, keepdims=True)
    var = np.einsum("...i,...i->...", y, y)[..., None] / np.float32(x.shape[-1])
    y *= 1.0 / np.sqrt(var + eps)
    if weight is not None:
        y *= weight
    if bias is not None:
        y += bias
    return y


def l2_normalize(x: Array, eps: float = 1e-12) -> Array:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def softmax(x: Array) -> Array:
    e = x - x.max(-1, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(-1, keepdims=True)
    return e


def attention(q: Array, k: Array, v: Array, key_mask: Array | None = None) -> Array:
    """Scaled dot-product attention over [B, H, N, D]; ``key_mask`` [B, M] is True where keys count."""
    scores = (q * np.float32(1.0 / math.sqrt(q.shape[-1]))) @ k.swapaxes(-1, -2)  # scale the smaller tensor
    if key_mask is not None:
        scores = np.where(key_mask[:, None, None, :], scores, np.float32(-np.inf))
    return softmax(scores) @ v


def conv1d(x: Array, weight: Array, bias: Array | None = None, padding: int = 0, dilation: int = 1,
           stride: int = 1) -> Array:
    """torch conv1d as one matmul over gathered taps: x [B, Cin, T], weight [Cout, Cin, K]."""
    cout, cin, k = weight.shape
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    length = (x.shape[-1] - dilation * (k - 1) - 1) // stride + 1
    if k == 1 and stride == 1:
        y = weight[:, :, 0] @ x
    else:
        taps = np.stack([x[:, :, j * dilation: j * dilation + stride * (length - 1) + 1: stride] for j in range(k)],
                        axis=2)  # [B, Cin, K, L]
        y = weight.reshape(cout, cin * k) @ taps.reshape(x.shape[0], cin * k, length)
    return y if bias is None else y + bias[:, None]


def conv_transpose1d(x: Array, weight: Array, bias: Array | None = None, stride: int = 1, padding: int = 0) -> Array:
    """torch conv_transpose1d: x [B, Cin, T], weight [Cin, Cout, K]; each tap scatters a strided copy."""
    cin, cout, k = weight.shape
    b, _, t = x.shape
    full = np.zeros((b, cout, (t - 1) * stride + k), dtype=x.dtype)
    taps = np.einsum("ick,bit->bkct", weight, x, optimize=True)  # [B, K, Cout, T]
    for j in range(k):
        full[:, :, j: j + stride * (t - 1) + 1: stride] += taps[:, j]
    y = full[:, :, padding: full.shape[-1] - padding] if padding else full
    return y if bias is None else y + bias[:, None]


def snake_beta(x: Array, log_alpha: Array, log_beta: Array) -> Array:
    """x + sin^2(a x) / b with per-channel a = exp(log_alpha), b = exp(log_beta), over [B, C, T]."""
    alpha = np.exp(log_alpha)[None, :, None]
    inv_beta = (1.0 / (np.exp(log_beta) + 1e-9))[None, :, None]
    s = x * alpha
    np.sin(s, out=s)
    s *= s
    s *= inv_beta
    s += x
    return s


def elu(x: Array) -> Array:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def weight_norm(g: Array, v: Array) -> Array:
    """w = g v / ||v||, the norm over all but the first axis (torch weight_norm with dim=0)."""
    norm = np.sqrt((v.astype(np.float64) ** 2).sum(axis=tuple(range(1, v.ndim)), keepdims=True))
    return (v * (g / norm)).astype(np.float32)
