"""A plain BERT encoder (the shipped model's all-MiniLM-L6-v2) in numpy: ``models.bert`` without torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from ...models.text_encoder_files import bert_key
from .ops import Array, attention, gelu, gelu_tanh, layer_norm, linear, relu

ACTIVATIONS = {"gelu": gelu, "gelu_new": gelu_tanh, "relu": relu}


class LiteBert:
    def __init__(self, folder: str | Path):
        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.act = ACTIVATIONS[config.get("hidden_act", "gelu")]
        weights = load_file(str(folder / "model.safetensors"))
        self.w = {ours: value.astype(np.float32, copy=False) for key, value in weights.items()
                  if (ours := bert_key(key)) is not None}

    def __call__(self, input_ids: Array, attention_mask: Array) -> Array:
        """ids, mask [B, T] -> last hidden state [B, T, dim]."""
        w = self.w
        n = input_ids.shape[1]
        x = w["word.weight"][input_ids] + w["position.weight"][:n] + w["segment.weight"][0]
        x = layer_norm(x, w["norm.weight"], w["norm.bias"], self.eps)
        mask = attention_mask.astype(bool)
        for i in range(self.layers):
            x = self._layer(f"layers.{i}", x, mask)
        return x

    def _layer(self, p: str, x: Array, mask: Array) -> Array:
        w = self.w
        b, n, d = x.shape
        q, k, v = (linear(x, w[f"{p}.{name}.weight"], w[f"{p}.{name}.bias"])
                   .reshape(b, n, self.heads, -1).transpose(0, 2, 1, 3) for name in ("query", "key", "value"))
        attn = attention(q, k, v, key_mask=mask).transpose(0, 2, 1, 3).reshape(b, n, d)
        x = layer_norm(x + linear(attn, w[f"{p}.out.weight"], w[f"{p}.out.bias"]),
                       w[f"{p}.attn_norm.weight"], w[f"{p}.attn_norm.bias"], self.eps)
        h = self.act(linear(x, w[f"{p}.intermediate.weight"], w[f"{p}.intermediate.bias"]))
        return layer_norm(x + linear(h, w[f"{p}.output.weight"], w[f"{p}.output.bias"]),
                          w[f"{p}.ffn_norm.weight"], w[f"{p}.ffn_norm.bias"], self.eps)
