"""Training checkpoints: written atomically, read without unpickling code.

Layout of RUN_DIR/checkpoints/step_00001000/:
  modules.safetensors   every module's weights (trainable networks and their EMA copies), prefixed by name
  state.pt              optimizer / scheduler state dicts and RNG states (torch.load(weights_only=True))
  state.json            step, epoch position, the run's config
The directory is first written as `*.tmp` and renamed into place, then `latest` (a one-line text file)
is replaced atomically, so a run killed at any instant resumes from the last complete checkpoint.
"""

from __future__ import annotations

import ast
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from prestissimo.models.loading import atomic_write_bytes

LATEST = "latest"


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}"


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "numpy_pos": int(np_state[2]), "python": repr(random.getstate())}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate(ast.literal_eval(state["python"]))


def save_checkpoint(run_dir: str | Path, step: int, modules: dict[str, torch.nn.Module],
                    optim_state: dict[str, Any], meta: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint `step`, point `latest` at it, and delete all but the `keep` newest."""
    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    tensors = {f"{name}.{k}": v.detach().cpu().contiguous() for name, module in modules.items()
               for k, v in module.state_dict().items()}
    save_file(tensors, str(tmp / "modules.safetensors"))
    torch.save({"optim": optim_state, "rng": rng_state()}, tmp / "state.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **meta}, indent=2) + "\n")
    for f in tmp.iterdir():  # make the files durable before the rename publishes them
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_bytes(Path(run_dir) / "checkpoints" / LATEST, lambda tmp_path: Path(tmp_path).write_text(final.name + "\n"))
    _prune(Path(run_dir) / "checkpoints", keep)
    return final


def _prune(folder: Path, keep: int) -> None:
    done = sorted(p for p in folder.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    pointer = Path(run_dir) / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return path if (path / "state.json").is_file() else None


class CheckpointError(RuntimeError):
    pass


def load_checkpoint(path: Path, modules: dict[str, torch.nn.Module]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load weights into `modules` (strict, naming what does not fit); returns (optim_state, meta)."""
    tensors = load_file(str(path / "modules.safetensors"))
    for name, module in modules.items():
        prefix = f"{name}."
        sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        expected = set(module.state_dict())
        missing, unexpected = sorted(expected - set(sub)), sorted(set(sub) - expected)
        if missing or unexpected:
            raise CheckpointError(f"{path}: module {name!r} does not match the checkpoint "
                                  f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        module.load_state_dict(sub)
    state = torch.load(path / "state.pt", weights_only=True)
    meta = json.loads((path / "state.json").read_text())
    set_rng_state(state["rng"])
    return state["optim"], meta
