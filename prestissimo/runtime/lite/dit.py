"""The Stable Audio DiT (``models.dit`` + ``models.transformer``) as numpy functions of its state dict.

Same computation as the torch modules, inference only: the prompt's cross-attention keys/values and
the global embedding are computed once per generation (:meth:`LiteDiT.prepare`), then every sampling
step runs :meth:`LiteDiT.velocity`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...models.config import DiTConfig
from .ops import Array, attention, l2_normalize, layer_norm, linear, sigmoid, silu


@dataclass
class Prepared:
    """What depends on the prompt but not on the step: per-layer context K/V and the projected global vector."""

    context_kv: list[tuple[Array, Array] | None]
    global_embed: Array | None  # [B, dim] before the time embedding is added


class LiteDiT:
    def __init__(self, cfg: DiTConfig, weights: dict[str, Array]):
        """``weights``: the DiT's tensors without the ``model.model.`` prefix, float32."""
        self.cfg = cfg
        self.w = weights
        self.heads = cfg.num_heads
        self.dim_heads = cfg.dim_heads
        inv_freq = weights["transformer.rotary_pos_emb.inv_freq"]
        self._inv_freq = inv_freq.astype(np.float32)

    # ------------------------------------------------------------------ helpers
    def _mlp(self, prefix: str, x: Array) -> Array:
        w = self.w
        h = silu(linear(x, w[f"{prefix}.0.weight"], w.get(f"{prefix}.0.bias")))
        return linear(h, w[f"{prefix}.2.weight"], w.get(f"{prefix}.2.bias"))

    def _split_heads(self, t: Array, heads: int) -> Array:
        b, n, _ = t.shape
        return t.reshape(b, n, heads, self.dim_heads).transpose(0, 2, 1, 3)

    def _qk_norm(self, prefix: str, t: Array) -> Array:
        if self.cfg.qk_norm == "ln":
            return layer_norm(t, self.w[f"{prefix}.weight"], self.w[f"{prefix}.bias"], 1e-6)
        if self.cfg.qk_norm == "l2":
            return l2_normalize(t)
        return t

    def _positions(self, n: int) -> Array:
        """The absolute sin/cos position features (``use_sinusoidal_emb``) for n tokens."""
        half = self.cfg.embed_dim // 2
        inv_freq = 10000.0 ** -(np.arange(half, dtype=np.float32) / half)
        angles = np.outer(np.arange(n, dtype=np.float32), inv_freq)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1) * self.w["transformer.pos_emb.scale"]

    def _rotary(self, n: int) -> tuple[Array, Array]:
        freqs = np.outer(np.arange(n, dtype=np.float32), self._inv_freq)
        freqs = np.concatenate([freqs, freqs], axis=-1)
        return np.cos(freqs), np.sin(freqs)

    @staticmethod
    def _apply_rotary(x: Array, cos: Array, sin: Array) -> Array:
        rot = cos.shape[-1]
        x_rot, x_pass = x[..., :rot], x[..., rot:]
        x1, x2 = x_rot[..., : rot // 2], x_rot[..., rot // 2:]
        rotated = np.concatenate([-x2, x1], axis=-1)
        return np.concatenate([x_rot * cos + rotated * sin, x_pass], axis=-1)

    def _has_cross(self, i: int) -> bool:
        ix = self.cfg.final_cross_attn_ix
        return self.cfg.cond_token_dim > 0 and (ix == -1 or i <= ix)

    # ------------------------------------------------------------------ per generation
    def prepare(self, tokens: Array | None, global_cond: Array | None) -> Prepared:
        """Conditioner outputs (tokens [B, Tc, cond_token_dim], global [B, D]) -> step-independent parts."""
        kv: list[tuple[Array, Array] | None] = []
        context = None if tokens is None else self._mlp("to_cond_embed", tokens)
        for i in range(self.cfg.depth):
            if context is None or not self._has_cross(i):
                kv.append(None)
                continue
            p = f"transformer.layers.{i}.cross_attn"
            k, v = np.split(linear(context, self.w[f"{p}.to_kv.weight"]), 2, axis=-1)
            kv_heads = k.shape[-1] // self.dim_heads
            k, v = self._split_heads(k, kv_heads), self._split_heads(v, kv_heads)
            k = self._qk_norm(f"{p}.k_norm", k)
            if kv_heads != self.heads:
                rep = self.heads // kv_heads
                k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
            kv.append((k, v))
        global_embed = None if global_cond is None else self._mlp("to_global_embed", global_cond)
        return Prepared(kv, global_embed)

    # ------------------------------------------------------------------ per step
    def velocity(self, x: Array, t: Array, prep: Prepared) -> Array:
        """x [B, C, L], t [B] -> the network output [B, C, L] (a velocity for rectified flow)."""
        w, cfg = self.w, self.cfg
        f = 2 * math.pi * t[:, None].astype(np.float32) @ w["timestep_features.weight"].T
        time_embed = self._mlp("to_timestep_embed", np.concatenate([np.cos(f), np.sin(f)], axis=-1))
        global_embed = time_embed if prep.global_embed is None else prep.global_embed + time_embed

        x = (w["preprocess_conv.weight"][:, :, 0] @ x) + x
        b, c, length = x.shape
        patch = cfg.patch_size
        tokens = x.reshape(b, c, length // patch, patch).transpose(0, 2, 1, 3).reshape(b, length // patch, c * patch)
        h = linear(tokens, w["transformer.project_in.weight"])
        n_prepend = 0
        ada = None
        if cfg.global_cond_type == "prepend":
            h = np.concatenate([global_embed[:, None], h], axis=1)
            n_prepend = 1
        else:
            ada = self._mlp("transformer.global_cond_embedder", global_embed)  # [B, 6 dim]
        if cfg.sinusoidal_pos_emb:
            h = h + self._positions(h.shape[1])
        cos, sin = self._rotary(h.shape[1])
        for i in range(cfg.depth):
            h = self._block(i, h, ada, cos, sin, prep.context_kv[i])
        out = linear(h, w["transformer.project_out.weight"])[:, n_prepend:]
        out = out.reshape(b, length // patch, c, patch).transpose(0, 2, 1, 3).reshape(b, c, length)
        return (w["postprocess_conv.weight"][:, :, 0] @ out) + out

    def _block(self, i: int, x: Array, ada: Array | None, cos: Array, sin: Array,
               kv: tuple[Array, Array] | None) -> Array:
        w = self.w
        p = f"transformer.layers.{i}"
        norm = lambda name, y: layer_norm(y, w[f"{p}.{name}.gamma"], w[f"{p}.{name}.beta"], 1e-5)  # noqa: E731
        if ada is not None:
            mods = np.split((w[f"{p}.to_scale_shift_gate"] + ada)[:, None, :], 6, axis=-1)
            scale_sa, shift_sa, gate_sa, scale_ff, shift_ff, gate_ff = mods
            # In place where the array is this block's own: elementwise passes were about a third of the time.
            h = norm("pre_norm", x)
            h *= 1 + scale_sa
            h += shift_sa
            h = self._self_attention(p, h, cos, sin)
            h *= sigmoid(1 - gate_sa)
            x = x + h
            if kv is not None:
                x += self._cross_attention(p, norm("cross_attend_norm", x), kv)
            h = norm("ff_norm", x)
            h *= 1 + scale_ff
            h += shift_ff
            h = self._feed_forward(p, h)
            h *= sigmoid(1 - gate_ff)
            x += h
            return x
        x = x + self._self_attention(p, norm("pre_norm", x), cos, sin)
        if kv is not None:
            x += self._cross_attention(p, norm("cross_attend_norm", x), kv)
        x += self._feed_forward(p, norm("ff_norm", x))
        return x

    def _self_attention(self, p: str, x: Array, cos: Array, sin: Array) -> Array:
        qkv = linear(x, self.w[f"{p}.self_attn.to_qkv.weight"])
        q, k, v = (self._split_heads(t, self.heads) for t in np.split(qkv, 3, axis=-1))
        q, k = self._qk_norm(f"{p}.self_attn.q_norm", q), self._qk_norm(f"{p}.self_attn.k_norm", k)
        q, k = self._apply_rotary(q, cos, sin), self._apply_rotary(k, cos, sin)
        return self._merge(p + ".self_attn", attention(q, k, v))

    def _cross_attention(self, p: str, x: Array, kv: tuple[Array, Array]) -> Array:
        q = self._split_heads(linear(x, self.w[f"{p}.cross_attn.to_q.weight"]), self.heads)
        q = self._qk_norm(f"{p}.cross_attn.q_norm", q)
        return self._merge(p + ".cross_attn", attention(q, *kv))

    def _merge(self, p: str, out: Array) -> Array:
        b, h, n, d = out.shape
        return linear(out.transpose(0, 2, 1, 3).reshape(b, n, h * d), self.w[f"{p}.to_out.weight"])

    def _feed_forward(self, p: str, x: Array) -> Array:
        w = self.w
        value, gate = np.split(linear(x, w[f"{p}.ff.ff.0.proj.weight"], w[f"{p}.ff.ff.0.proj.bias"]), 2, axis=-1)
        gated = silu(gate)
        gated *= value
        return linear(gated, w[f"{p}.ff.ff.2.weight"], w[f"{p}.ff.ff.2.bias"])
