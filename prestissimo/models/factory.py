"""Building complete model directories with random weights: for tests, demos and speed benchmarks."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from .conditioners import create_tiny_t5
from .config import ModelConfig
from .presets import TINY_TEXT_ENCODER, preset


def create_random_model(config: str | dict[str, Any], out_dir: str | Path, seed: int = 0) -> Path:
    """Write ``model_config.json`` + ``model.safetensors`` with freshly initialised weights.

    ``config`` is a preset name or a model_config dict. Presets that use the tiny local text encoder
    get one written next to the weights, so the directory works fully offline.
    """
    from ..pipeline import TextToAudio

    cfg_dict = preset(config) if isinstance(config, str) else copy.deepcopy(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = ModelConfig.from_dict(cfg_dict)
    for cond in cfg.conditioners:
        name = cond.config.get("t5_model_name")
        if cond.type == "t5" and name == TINY_TEXT_ENCODER and not (out / name).is_dir():
            create_tiny_t5(out / name, d_model=min(cfg.cond_dim, 64), seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TextToAudio(cfg, model_dir=out)
    model.save_pretrained(out)
    return out


def randomize_(module: torch.nn.Module, seed: int = 0, std: float = 0.05) -> torch.nn.Module:
    """Fill every parameter with random values (zero-initialised layers included) for numerical tests.

    Gains (LayerNorm weights, weight-norm magnitudes) stay positive around 1 so activations keep a sane
    scale through deep stacks.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g).to(p.dtype)
            if name.endswith(("gamma", "norm.weight", "weight_g")):
                p.copy_(1.0 + 0.1 * noise.abs() if name.endswith("weight_g") else 1.0 + 0.1 * noise)
            elif p.dim() >= 2:  # matrices and kernels: unit-variance outputs (fan-in scaling)
                p.copy_(noise / p[0].numel() ** 0.5)
            elif name.endswith("embedding.0.weights"):  # Fourier frequencies of number embedders
                p.copy_(noise)
            else:
                p.copy_(std * noise)
    return module
