"""The continuous transformer trunk of the Stable Audio DiT.

Pre-norm blocks of self-attention (rotary position embedding on part of each head), cross-attention
to conditioning tokens (grouped-query when the context is narrower than the model) and a SwiGLU
feed-forward. Names follow stable-audio-tools' state dict (``layers.N.self_attn.to_qkv`` ...).
"""

from __future__ import annotations

import torch
import torch.utils.checkpoint
from torch import nn
from torch.nn import functional as F


class LayerNorm(nn.Module):
    """Bias-free LayerNorm; ``beta`` is a zero buffer kept only because released checkpoints contain it."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.register_buffer("beta", torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.gamma, self.beta, self.eps)


class RotaryEmbedding(nn.Module):
    """Rotary frequencies for the first ``dim`` channels of each head (GPT-J style partial rotary)."""

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq)  # persistent: it is in released checkpoints

    def forward(self, seq_len: int) -> torch.Tensor:
        t = torch.arange(seq_len, device=self.inv_freq.device, dtype=torch.float32)
        freqs = torch.outer(t, self.inv_freq.float())
        return torch.cat((freqs, freqs), dim=-1)


class ScaledSinusoidalEmbedding(nn.Module):
    """Absolute position as sin/cos features times one learned scale (stable-audio-tools'
    ``use_sinusoidal_emb``). Rotary attention only sees offsets between tokens; this tells each token
    where it sits in the clip."""

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), dim**-0.5))
        half = dim // 2
        self.register_buffer("inv_freq", theta ** -(torch.arange(half).float() / half), persistent=False)

    def forward(self, seq_len: int) -> torch.Tensor:
        """[seq_len, dim] features, float32."""
        pos = torch.arange(seq_len, device=self.inv_freq.device, dtype=torch.float32)
        angles = torch.outer(pos, self.inv_freq.float())
        return torch.cat((angles.sin(), angles.cos()), dim=-1) * self.scale.float()


def apply_rotary(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``freqs.shape[-1]`` channels of x [..., N, D] by position; the rest pass through."""
    rot_dim = freqs.shape[-1]
    dtype = x.dtype
    x = x.float()
    x_rot, x_pass = x[..., :rot_dim], x[..., rot_dim:]
    x1, x2 = x_rot.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    x_rot = x_rot * freqs.cos() + rotated * freqs.sin()
    return torch.cat((x_rot, x_pass), dim=-1).to(dtype)


class Attention(nn.Module):
    """Multi-head attention; self-attention uses a fused qkv projection, cross-attention q + kv."""

    def __init__(self, dim: int, dim_heads: int, dim_context: int | None = None, qk_norm: str = "none"):
        super().__init__()
        self.num_heads = dim // dim_heads
        self.dim_heads = dim_heads
        if dim_context is not None:
            self.kv_heads = dim_context // dim_heads
            self.to_q = nn.Linear(dim, dim, bias=False)
            self.to_kv = nn.Linear(dim_context, 2 * dim_context, bias=False)
        else:
            self.kv_heads = self.num_heads
            self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        nn.init.zeros_(self.to_out.weight)  # residual branches start at zero, as in the reference
        self.qk_norm = qk_norm
        if qk_norm == "ln":
            self.q_norm = nn.LayerNorm(dim_heads, eps=1e-6)
            self.k_norm = nn.LayerNorm(dim_heads, eps=1e-6)

    def _heads(self, t: torch.Tensor, heads: int) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, heads, self.dim_heads).transpose(1, 2)

    def project_context(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of a cross-attention context (cacheable: they do not depend on x)."""
        k, v = self.to_kv(context).chunk(2, dim=-1)
        k, v = self._heads(k, self.kv_heads), self._heads(v, self.kv_heads)
        if self.qk_norm == "ln":
            k = self.k_norm(k)
        elif self.qk_norm == "l2":
            k = F.normalize(k, dim=-1)
        if self.kv_heads != self.num_heads:
            rep = self.num_heads // self.kv_heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        return k, v

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                rotary: torch.Tensor | None = None,
                context_kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        if context is not None or context_kv is not None:
            q = self._heads(self.to_q(x), self.num_heads)
            k, v = context_kv if context_kv is not None else self.project_context(context)
            if self.qk_norm == "ln":
                q = self.q_norm(q)
            elif self.qk_norm == "l2":
                q = F.normalize(q, dim=-1)
        else:
            q, k, v = (self._heads(t, self.num_heads) for t in self.to_qkv(x).chunk(3, dim=-1))
            if self.qk_norm == "ln":
                q, k = self.q_norm(q), self.k_norm(k)
            elif self.qk_norm == "l2":
                q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
            if rotary is not None:
                q, k = apply_rotary(q, rotary).to(v.dtype), apply_rotary(k, rotary).to(v.dtype)
        out = F.scaled_dot_product_attention(q, k, v)
        b, h, n, d = out.shape
        return self.to_out(out.transpose(1, 2).reshape(b, n, h * d))


class GLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, 2 * dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.silu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: float = 4.0):
        super().__init__()
        inner = int(dim * mult)
        # Indices 0 and 2 match the released key names ff.ff.0.proj / ff.ff.2.
        self.ff = nn.Sequential(GLU(dim, inner), nn.Identity(), nn.Linear(inner, dim))
        nn.init.zeros_(self.ff[2].weight)
        nn.init.zeros_(self.ff[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(x)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, dim_heads: int, cross_attend: bool, dim_context: int | None,
                 qk_norm: str, ff_mult: float, ada_ln: bool):
        super().__init__()
        self.pre_norm = LayerNorm(dim)
        self.self_attn = Attention(dim, dim_heads, qk_norm=qk_norm)
        self.cross_attend = cross_attend
        if cross_attend:
            self.cross_attend_norm = LayerNorm(dim)
            self.cross_attn = Attention(dim, dim_heads, dim_context=dim_context, qk_norm=qk_norm)
        self.ff_norm = LayerNorm(dim)
        self.ff = FeedForward(dim, ff_mult)
        self.ada_ln = ada_ln
        if ada_ln:
            self.to_scale_shift_gate = nn.Parameter(torch.randn(6 * dim) / dim**0.5)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                global_cond: torch.Tensor | None = None, rotary: torch.Tensor | None = None,
                context_kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        has_context = self.cross_attend and (context is not None or context_kv is not None)
        if self.ada_ln and global_cond is not None:
            scale_sa, shift_sa, gate_sa, scale_ff, shift_ff, gate_ff = (
                (self.to_scale_shift_gate + global_cond).unsqueeze(1).chunk(6, dim=-1)
            )
            h = self.self_attn(self.pre_norm(x) * (1 + scale_sa) + shift_sa, rotary=rotary)
            x = x + h * torch.sigmoid(1 - gate_sa)
            if has_context:
                x = x + self.cross_attn(self.cross_attend_norm(x), context, context_kv=context_kv)
            h = self.ff(self.ff_norm(x) * (1 + scale_ff) + shift_ff)
            return x + h * torch.sigmoid(1 - gate_ff)
        x = x + self.self_attn(self.pre_norm(x), rotary=rotary)
        if has_context:
            x = x + self.cross_attn(self.cross_attend_norm(x), context, context_kv=context_kv)
        return x + self.ff(self.ff_norm(x))


class ContinuousTransformer(nn.Module):
    def __init__(self, dim: int, depth: int, dim_heads: int, dim_in: int, dim_out: int,
                 cross_attend: bool, cond_token_dim: int | None, qk_norm: str = "none",
                 ff_mult: float = 4.0, global_cond_dim: int | None = None, final_cross_attn_ix: int = -1,
                 sinusoidal_pos_emb: bool = False):
        super().__init__()
        self.activation_checkpointing = False  # trade compute for memory in training (ARC, big models)
        self.project_in = nn.Linear(dim_in, dim, bias=False)
        self.project_out = nn.Linear(dim, dim_out, bias=False)
        self.rotary_pos_emb = RotaryEmbedding(max(dim_heads // 2, 32))
        self.pos_emb = ScaledSinusoidalEmbedding(dim) if sinusoidal_pos_emb else None
        self.global_cond_embedder = None
        if global_cond_dim is not None:
            self.global_cond_embedder = nn.Sequential(
                nn.Linear(global_cond_dim, dim), nn.SiLU(), nn.Linear(dim, 6 * dim)
            )
        self.layers = nn.ModuleList(
            TransformerBlock(
                dim, dim_heads,
                cross_attend=cross_attend and (final_cross_attn_ix == -1 or i <= final_cross_attn_ix),
                dim_context=cond_token_dim, qk_norm=qk_norm, ff_mult=ff_mult,
                ada_ln=global_cond_dim is not None,
            )
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor, prepend: torch.Tensor | None = None,
                context: torch.Tensor | None = None, global_cond: torch.Tensor | None = None,
                context_kv: list[tuple[torch.Tensor, torch.Tensor] | None] | None = None,
                exit_layer_ix: int | None = None) -> torch.Tensor:
        """x [B, N, dim_in] -> [B, P + N, dim_out]; with ``exit_layer_ix`` the hidden state after that layer."""
        x = self.project_in(x)
        if prepend is not None:
            x = torch.cat((prepend, x), dim=1)
        rotary = self.rotary_pos_emb(x.shape[1])
        if self.pos_emb is not None:  # after any prepended token, as stable-audio-tools adds it
            x = x + self.pos_emb(x.shape[1]).to(x.dtype)
        if global_cond is not None and self.global_cond_embedder is not None:
            global_cond = self.global_cond_embedder(global_cond)
        checkpointed = self.activation_checkpointing and self.training and torch.is_grad_enabled()
        for i, layer in enumerate(self.layers):
            kv = context_kv[i] if context_kv is not None else None
            if checkpointed:  # recompute the block in backward instead of keeping its activations
                x = torch.utils.checkpoint.checkpoint(layer, x, context=context, global_cond=global_cond,
                                                      rotary=rotary, context_kv=kv, use_reentrant=False)
            else:
                x = layer(x, context=context, global_cond=global_cond, rotary=rotary, context_kv=kv)
            if exit_layer_ix is not None and i == exit_layer_ix:
                return x
        return self.project_out(x)
