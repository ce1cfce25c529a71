"""Exporting a model directory for release: weights stored in a smaller dtype, a model card, a size
budget, and a check that the result loads; written next to the target and renamed into place, so a
failed export never leaves a half-written model where the old one was."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from .config import SamplingDefaults
from .loading import read_config, read_state_dict, resolve_model_dir, write_model_dir

STORAGE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CARD_NAME = "README.md"


class ExportError(ValueError):
    """The export was refused; nothing at the target changed."""


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _default_permissions(folder: Path) -> None:
    """The modes a plain mkdir / open would have given under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def with_decoder(state: dict[str, torch.Tensor], config: dict[str, Any],
                 autoencoder_dir: str | Path) -> dict[str, torch.Tensor]:
    """``state`` (a model's weights, its ``config``) with the decoder of the autoencoder in ``autoencoder_dir``.

    Only a decoder fine-tuned behind the model's own encoder is accepted (`train autoencoder` with
    ``init_from`` and ``train_encoder: false``): the DiT generates that encoder's latents, so an
    autoencoder whose encoder differs would decode another latent space. Encoders are compared in the
    model's stored precision (an fp16 export matches the fp32 autoencoder it was made from).
    """
    from .autoencoder_io import load_matching_autoencoder
    from .config import ModelConfig

    ours = ModelConfig.from_dict(config).autoencoder
    autoencoder = load_matching_autoencoder(autoencoder_dir, ours, int(config["sample_rate"]))  # else ConfigError
    prefix = "pretransform.model."
    theirs = autoencoder.state_dict()
    changed = [k for k, v in theirs.items() if k.startswith("encoder.")
               and not torch.equal(v.to(state[prefix + k].dtype), state[prefix + k])]
    if changed:
        raise ExportError(f"the autoencoder in {autoencoder_dir} has another encoder ({len(changed)} tensors differ, "
                          f"e.g. {changed[0]}): the model generates its own encoder's latents, so only a decoder "
                          "fine-tuned with that encoder frozen fits")
    return {**state, **{prefix + k: v for k, v in theirs.items() if k.startswith("decoder.")}}


def export_model(source: str | Path, out: str | Path, storage: str = "fp16", card: str | Path | None = None,
                 max_megabytes: float | None = None, overwrite: bool = False,
                 sampling: dict[str, Any] | None = None, decoder: str | Path | None = None,
                 prior_steps: int | None = None) -> Path:
    """Write ``source``'s config and weights to ``out`` with floating-point tensors stored as ``storage``.

    Loading casts them back to the model's dtype (fp32 on CPU), so fp16 storage halves the files and
    costs only the rounding of each weight. ``decoder``, an autoencoder directory, replaces the model's
    decoder (see :func:`with_decoder`). ``sampling`` (sampler / steps / cfg_scale / eta) replaces the
    default sampling saved with the model, which `generate` uses when not told otherwise; ``prior_steps``
    the Euler steps of its envelope prior (a model with one spends them before its DiT). The exported
    directory is loaded once before it replaces ``out``; a local text encoder directory next to the
    weights is copied along.
    """
    from ..pipeline import TextToAudio
    from ..request import check_sampling

    sampling = dict(sampling or {})
    unknown = set(sampling) - {f.name for f in dataclasses.fields(SamplingDefaults)}
    if unknown:
        raise ExportError(f"unknown sampling settings {sorted(unknown)}")
    if storage not in STORAGE_DTYPES:
        raise ExportError(f"storage must be one of {', '.join(STORAGE_DTYPES)}, got {storage!r}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out} exists and is not empty (pass overwrite to replace it)")
    if max_megabytes is not None and not max_megabytes > 0:
        raise ExportError(f"the size budget must be > 0 MB, got {max_megabytes:g}")
    if prior_steps is not None and prior_steps < 1:
        raise ExportError(f"prior steps must be >= 1, got {prior_steps}")
    if card is not None and not Path(card).is_file():
        raise ExportError(f"model card {card} does not exist")
    src = resolve_model_dir(source)
    dtype = STORAGE_DTYPES[storage]
    config = read_config(src)
    if prior_steps is not None:
        prior = config.get("prestissimo", {}).get("envelope_prior")
        if prior is None:
            raise ExportError(f"{src} has no envelope prior, so prior steps do not apply")
        prior["steps"] = prior_steps
    state = read_state_dict(src)
    if decoder is not None:
        state = with_decoder(state, config, decoder)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if sampling:
            ours = config.setdefault("prestissimo", {})
            ours["sampling"] = {**ours.get("sampling", {}), **sampling}
        write_model_dir(staging, config, state)
        for entry in src.iterdir():  # local text encoders (tiny test models) travel with the weights
            if entry.is_dir() and (entry / "config.json").is_file():
                shutil.copytree(entry, staging / entry.name)
        if card is not None:
            shutil.copyfile(card, staging / CARD_NAME)
        exported = TextToAudio.from_pretrained(staging, load_text_encoder=False)  # strict keys and shapes
        defaults = exported.config.sampling
        try:
            check_sampling(defaults.sampler, defaults.steps, defaults.cfg_scale, defaults.eta)
        except ValueError as e:
            raise ExportError(f"default sampling: {e}") from None
        _default_permissions(staging)  # mkdtemp / atomic writes make owner-only files; a release is for everyone
        size = directory_bytes(staging)
        if max_megabytes is not None and size > max_megabytes * 1e6:
            raise ExportError(f"the export is {size / 1e6:.1f} MB, over the {max_megabytes:g} MB budget")
        previous = staging.with_name(staging.name + ".old")
        if out.exists():
            out.rename(previous)
        staging.rename(out)
        if previous.exists():
            shutil.rmtree(previous)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out
