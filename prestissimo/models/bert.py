"""A BERT encoder (e.g. all-MiniLM-L6-v2) read straight from a transformers folder, without transformers.

Why not transformers' BertModel: importing and loading through transformers cost seconds on a 2-core CPU,
more than the whole budget of `prestissimo generate` with the shipped model, whose text encoder is a
6-layer MiniLM (benchmarks/generate_wall_time.py: 8.5 s for the command before this module, 3-4 s after). This
module reads the same files (config.json, model.safetensors with transformers' key names,
tokenizer.json through the light `tokenizers` library) and computes the same
last_hidden_state; tests/test_bert.py checks it against transformers' BertModel numerically.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

ACTIVATIONS = {"gelu": F.gelu, "gelu_new": functools.partial(F.gelu, approximate="tanh"), "relu": F.relu}


def is_plain_bert(folder: Path) -> bool:
    """A transformers BERT folder this module can load: absolute positions and safetensors weights."""
    config = folder / "config.json"
    if not (config.is_file() and (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()):
        return False
    c = json.loads(config.read_text())
    return (c.get("model_type") == "bert" and c.get("position_embedding_type", "absolute") == "absolute"
            and c.get("hidden_act", "gelu") in ACTIVATIONS)


class BertLayer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, eps: float, act: str):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.attn_norm = nn.LayerNorm(dim, eps=eps)
        self.intermediate = nn.Linear(dim, hidden)
        self.output = nn.Linear(hidden, dim)
        self.ffn_norm = nn.LayerNorm(dim, eps=eps)
        self.act = ACTIVATIONS[act]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (f(x).view(b, n, self.heads, d // self.heads).transpose(1, 2) for f in (self.query, self.key, self.value))
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        x = self.attn_norm(x + self.out(attn.transpose(1, 2).reshape(b, n, d)))
        return self.ffn_norm(x + self.output(self.act(self.intermediate(x))))


class BertEncoder(nn.Module):
    """Post-LayerNorm BERT: token + position + segment embeddings, then self-attention / MLP blocks."""

    def __init__(self, config: dict):
        super().__init__()
        dim = config["hidden_size"]
        self.word = nn.Embedding(config["vocab_size"], dim)
        self.position = nn.Embedding(config["max_position_embeddings"], dim)
        self.segment = nn.Embedding(config.get("type_vocab_size", 2), dim)
        self.norm = nn.LayerNorm(dim, eps=config.get("layer_norm_eps", 1e-12))
        self.layers = nn.ModuleList(
            BertLayer(dim, config["num_attention_heads"], config["intermediate_size"],
                      config.get("layer_norm_eps", 1e-12), config.get("hidden_act", "gelu"))
            for _ in range(config["num_hidden_layers"]))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.norm(self.word(input_ids) + self.position(positions) + self.segment(torch.zeros_like(input_ids)))
        mask = attention_mask.bool()
        for layer in self.layers:
            x = layer(x, mask)
        return {"last_hidden_state": x}

    @staticmethod
    def rename(key: str) -> str | None:
        """transformers' key -> ours (None: not part of the encoder, e.g. the pooler)."""
        key = key.removeprefix("bert.")
        for theirs, ours in (("embeddings.word_embeddings.", "word."), ("embeddings.position_embeddings.", "position."),
                             ("embeddings.token_type_embeddings.", "segment."), ("embeddings.LayerNorm.", "norm.")):
            if key.startswith(theirs):
                return ours + key[len(theirs):]
        if not key.startswith("encoder.layer."):
            return None
        _, _, index, rest = key.split(".", 3)
        for theirs, ours in (("attention.self.query.", "query."), ("attention.self.key.", "key."),
                             ("attention.self.value.", "value."), ("attention.output.dense.", "out."),
                             ("attention.output.LayerNorm.", "attn_norm."), ("intermediate.dense.", "intermediate."),
                             ("output.dense.", "output."), ("output.LayerNorm.", "ffn_norm.")):
            if rest.startswith(theirs):
                return f"layers.{index}.{ours}{rest[len(theirs):]}"
        return None

    @classmethod
    def from_folder(cls, folder: str | Path) -> "BertEncoder":
        folder = Path(folder)
        model = cls(json.loads((folder / "config.json").read_text()))
        state = {}
        for key, value in load_file(str(folder / "model.safetensors")).items():
            ours = cls.rename(key)
            if ours is not None:
                state[ours] = value.float()
        model.load_state_dict(state, strict=True)  # names any missing or unexpected key
        return model.eval().requires_grad_(False)


class FastTokenizer:
    """tokenizer.json through `tokenizers`, called like transformers' tokenizers for what we use."""

    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    def __call__(self, texts: str | list[str], truncation: bool = False, max_length: int | None = None,
                 padding: str | bool = False, return_tensors: str | None = None) -> dict:
        single = isinstance(texts, str)
        encodings = self.tokenizer.encode_batch([texts] if single else list(texts))
        ids = [e.ids for e in encodings]
        if truncation and max_length:
            ids = [i if len(i) <= max_length else i[:max_length - 1] + i[-1:] for i in ids]  # keep [SEP]
        if padding == "max_length" and max_length:
            width = max_length
        else:
            width = max(len(i) for i in ids) if padding else 0
        mask = [[1] * len(i) + [0] * max(width - len(i), 0) for i in ids]
        ids = [i + [self.pad_id] * max(width - len(i), 0) for i in ids]
        if return_tensors == "pt":
            return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}
        return {"input_ids": ids[0] if single else ids, "attention_mask": mask[0] if single else mask}
