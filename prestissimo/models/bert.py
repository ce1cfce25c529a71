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

from .text_encoder_files import bert_key

ACTIVATIONS = {"gelu": F.gelu, "gelu_new": functools.partial(F.gelu, approximate="tanh"), "relu": F.relu}


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

    @classmethod
    def from_folder(cls, folder: str | Path) -> "BertEncoder":
        folder = Path(folder)
        model = cls(json.loads((folder / "config.json").read_text()))
        state = {}
        for key, value in load_file(str(folder / "model.safetensors")).items():
            ours = bert_key(key)
            if ours is not None:
                state[ours] = value.float()
        model.load_state_dict(state, strict=True)  # names any missing or unexpected key
        return model.eval().requires_grad_(False)


#: The tiny test vocabulary: enough words for the prompts tests use; anything else is [UNK] or word pieces.
TINY_WORDS = ["a", "slow", "piano", "melody", "in", "c", "major", "rain", "on", "tin", "roof", "##s", "##ing", "wind",
              "loud", "noise", "high", "low", "drum", "fast"]


def create_tiny_bert(out_dir: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write a randomly initialised small BERT (WordPiece tokenizer) as a transformers folder, for tests
    and demos of the BERT text-encoder path offline."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS])}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                                     num_attention_heads=4, intermediate_size=2 * hidden, max_position_embeddings=64))
    out = Path(out_dir)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out
