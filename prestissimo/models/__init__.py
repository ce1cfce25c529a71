"""Networks (Oobleck autoencoder, DiT, conditioners), their configs and checkpoint loading."""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> submodule; imported on first use, so that configs and loading helpers work without torch
_EXPORTS = {
    "OobleckAutoencoder": "autoencoder", "MultiConditioner": "conditioners", "NumberConditioner": "conditioners",
    "T5Conditioner": "conditioners", "AutoencoderConfig": "config", "ConfigError": "config", "DiTConfig": "config",
    "ModelConfig": "config", "Conditioning": "denoiser", "Denoiser": "denoiser",
    "DiffusionTransformer": "dit", "ModelLoadError": "loading",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
