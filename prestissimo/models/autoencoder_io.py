"""Stand-alone autoencoder model directories (stable-audio-tools' `model_type: autoencoder` format):
model_config.json + model.safetensors with `encoder.*` / `decoder.*` keys. What `prestissimo train
autoencoder` exports and what `prestissimo encode` and DiT training read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from prestissimo.models.autoencoder import OobleckAutoencoder
from prestissimo.models.config import AutoencoderConfig, ConfigError
from prestissimo.models.loading import ModelLoadError, atomic_write_bytes, check_state_dict, normalize_keys


def autoencoder_config_dict(cfg: AutoencoderConfig, sample_rate: int, sample_size: int) -> dict[str, Any]:
    pre = cfg.to_pretransform(sample_rate)
    out = {"model_type": "autoencoder", "sample_rate": sample_rate, "sample_size": sample_size,
           "audio_channels": cfg.audio_channels, "model": pre["config"]}
    if cfg.scale != 1.0:
        out["prestissimo"] = {"latent_scale": cfg.scale}
    return out


def save_autoencoder(model: OobleckAutoencoder, sample_rate: int, sample_size: int, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(out / "model.safetensors", lambda tmp: save_file(tensors, tmp))
    text = json.dumps(autoencoder_config_dict(model.cfg, sample_rate, sample_size), indent=2) + "\n"
    atomic_write_bytes(out / "model_config.json", lambda tmp: Path(tmp).write_text(text))
    return out


def read_autoencoder_config(model_dir: str | Path) -> tuple[AutoencoderConfig, int, int]:
    """(config, sample_rate, sample_size) of an autoencoder directory."""
    path = Path(model_dir) / "model_config.json"
    if not path.is_file():
        raise ModelLoadError(f"{path} not found: an autoencoder directory holds model_config.json + model.safetensors")
    d = json.loads(path.read_text())
    if d.get("model_type") != "autoencoder":
        raise ConfigError(f"{path}: model_type {d.get('model_type')!r} is not 'autoencoder'")
    pre = {"type": "autoencoder", "config": d["model"]}
    scale = d.get("prestissimo", {}).get("latent_scale")
    if scale is not None:
        pre["scale"] = scale
    return AutoencoderConfig.from_pretransform(pre), int(d["sample_rate"]), int(d.get("sample_size", 0))


def load_autoencoder(model_dir: str | Path) -> tuple[OobleckAutoencoder, int]:
    """(autoencoder in eval mode, sample_rate); strict key check naming what does not fit."""
    cfg, sample_rate, _ = read_autoencoder_config(model_dir)
    model = OobleckAutoencoder(cfg)
    weights = Path(model_dir) / "model.safetensors"
    if not weights.is_file():
        raise ModelLoadError(f"{weights} not found")
    state = normalize_keys(load_file(str(weights)))
    check_state_dict(model.state_dict(), state)
    model.load_state_dict(state)
    return model.eval(), sample_rate


def load_matching_autoencoder(model_dir: str | Path, cfg: AutoencoderConfig, sample_rate: int) -> OobleckAutoencoder:
    """:func:`load_autoencoder`, refused (naming the fields) unless its network and sample rate are ``cfg``'s and
    ``sample_rate``: for continuing or swapping in a part of that exact autoencoder."""
    model, saved_rate = load_autoencoder(model_dir)
    differences = model.cfg.architecture_differences(cfg) + (["sample_rate"] if saved_rate != sample_rate else [])
    if differences:
        raise ConfigError(f"the autoencoder in {model_dir} is another network: its {', '.join(differences)} differ")
    return model
