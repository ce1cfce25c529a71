"""Named model configurations: the released Stable Audio Open architectures and tiny test-size copies.

The released values come from the public ``model_config.json`` files of
``stabilityai/stable-audio-open-small`` and ``stabilityai/stable-audio-open-1.0`` (see README).
"""

from __future__ import annotations

import copy
from typing import Any, Callable

_OOBLECK_RELEASED = {"channels": 128, "c_mults": [1, 2, 4, 8, 16], "strides": [2, 4, 4, 8, 8], "use_snake": True}


def _pretransform(audio_channels: int, oobleck: dict[str, Any], latent_dim: int) -> dict[str, Any]:
    ratio = 1
    for s in oobleck["strides"]:
        ratio *= s
    return {
        "type": "autoencoder",
        "iterate_batch": True,
        "config": {
            "encoder": {"type": "oobleck", "config": {"in_channels": audio_channels, **oobleck, "latent_dim": 2 * latent_dim}},
            "decoder": {"type": "oobleck", "config": {"out_channels": audio_channels, **oobleck, "latent_dim": latent_dim,
                                                      "final_tanh": False}},
            "bottleneck": {"type": "vae"},
            "latent_dim": latent_dim,
            "downsampling_ratio": ratio,
            "io_channels": audio_channels,
        },
    }


def _number(cond_id: str, max_val: float) -> dict[str, Any]:
    return {"id": cond_id, "type": "number", "config": {"min_val": 0, "max_val": max_val}}


def sao_small() -> dict[str, Any]:
    """Stable Audio Open Small: rectified flow, ARC post-trained, 8 ping-pong steps, no CFG, ~11.9 s."""
    return {
        "model_type": "diffusion_cond",
        "sample_size": 524288,
        "sample_rate": 44100,
        "audio_channels": 2,
        "model": {
            "pretransform": _pretransform(2, _OOBLECK_RELEASED, 64),
            "conditioning": {
                "configs": [
                    {"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-base", "max_length": 64}},
                    _number("seconds_total", 256),
                ],
                "cond_dim": 768,
            },
            "diffusion": {
                "cross_attention_cond_ids": ["prompt", "seconds_total"],
                "global_cond_ids": ["seconds_total"],
                "diffusion_objective": "rf_denoiser",
                "type": "dit",
                "config": {
                    "io_channels": 64, "embed_dim": 1024, "depth": 16, "num_heads": 8,
                    "cond_token_dim": 768, "global_cond_dim": 768, "transformer_type": "continuous_transformer",
                    "attn_kwargs": {"qk_norm": "ln"},
                },
            },
            "io_channels": 64,
        },
        "prestissimo": {"sampling": {"sampler": "pingpong", "steps": 8, "cfg_scale": 1.0}},
    }


def sao_1_0() -> dict[str, Any]:
    """Stable Audio Open 1.0: v-objective, DPM-Solver++ ~100 steps with CFG ~7, ~47.5 s."""
    return {
        "model_type": "diffusion_cond",
        "sample_size": 2097152,
        "sample_rate": 44100,
        "audio_channels": 2,
        "model": {
            "pretransform": _pretransform(2, _OOBLECK_RELEASED, 64),
            "conditioning": {
                "configs": [
                    {"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-base", "max_length": 128}},
                    _number("seconds_start", 512),
                    _number("seconds_total", 512),
                ],
                "cond_dim": 768,
            },
            "diffusion": {
                "cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total"],
                "global_cond_ids": ["seconds_start", "seconds_total"],
                "type": "dit",
                "config": {
                    "io_channels": 64, "embed_dim": 1536, "depth": 24, "num_heads": 24,
                    "cond_token_dim": 768, "global_cond_dim": 1536, "project_cond_tokens": False,
                    "transformer_type": "continuous_transformer",
                },
            },
            "io_channels": 64,
        },
        "prestissimo": {"sampling": {"sampler": "dpmpp-2m", "steps": 100, "cfg_scale": 7.0}},
    }


TINY_TEXT_ENCODER = "text_encoder"


def _shrink(config: dict[str, Any], *, embed_dim: int, num_heads: int, cond_dim: int, sample_size: int,
            sample_rate: int, oobleck_channels: int, latent_dim: int = 8) -> dict[str, Any]:
    """Same structure as a released preset, test-size numbers, and a local tiny text encoder."""
    c = copy.deepcopy(config)
    c["sample_size"], c["sample_rate"] = sample_size, sample_rate
    oobleck = {"channels": oobleck_channels, "c_mults": [1, 2], "strides": [2, 4], "use_snake": True}
    c["model"]["pretransform"] = _pretransform(c["audio_channels"], oobleck, latent_dim)
    cond = c["model"]["conditioning"]
    cond["cond_dim"] = cond_dim
    for entry in cond["configs"]:
        if entry["type"] == "t5":
            entry["config"] = {"t5_model_name": TINY_TEXT_ENCODER, "max_length": 16}
    n_global = len(c["model"]["diffusion"]["global_cond_ids"])
    dit = c["model"]["diffusion"]["config"]
    dit.update(io_channels=latent_dim, embed_dim=embed_dim, depth=2, num_heads=num_heads, cond_token_dim=cond_dim,
               global_cond_dim=cond_dim * n_global)
    c["model"]["io_channels"] = latent_dim
    return c


def tiny_small() -> dict[str, Any]:
    """SAO Small's structure (rectified flow, qk-norm, projected context), a few MB: for tests and demos."""
    return _shrink(sao_small(), embed_dim=128, num_heads=2, cond_dim=32, sample_size=8192, sample_rate=8000,
                   oobleck_channels=16)


def tiny_1_0() -> dict[str, Any]:
    """SAO 1.0's structure (v objective, unprojected context with grouped-query cross-attention)."""
    return _shrink(sao_1_0(), embed_dim=128, num_heads=2, cond_dim=64, sample_size=8192, sample_rate=8000,
                   oobleck_channels=16)


PRESETS: dict[str, Callable[[], dict[str, Any]]] = {
    "sao-small": sao_small,
    "sao-1.0": sao_1_0,
    "tiny": tiny_small,
    "tiny-1.0": tiny_1_0,
}


def preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]()
