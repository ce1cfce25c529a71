"""Finding, reading and writing checkpoints in the stable-audio-tools layout.

A model directory holds ``model_config.json`` and ``model.safetensors`` (or a legacy ``model.ckpt``,
read with ``torch.load(weights_only=True)``: never unpickle arbitrary objects). Key matching is strict:
a checkpoint that does not fit the config fails and names the missing, unexpected or misshapen keys.
torch is imported only by the functions that read or write tensors, so that finding a model and
reading its config stay torch-free (the ``runtime.lite`` engine).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

CONFIG_NAME = "model_config.json"
WEIGHTS_NAME = "model.safetensors"
LEGACY_WEIGHTS_NAME = "model.ckpt"


class ModelLoadError(RuntimeError):
    """A model could not be found or does not match its config; the message says which and what to do."""


def resolve_model_dir(path_or_repo_id: str | os.PathLike) -> Path:
    """A local directory as is; otherwise a Hugging Face hub repo id, downloaded (or taken from the cache)."""
    path = Path(path_or_repo_id).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ModelLoadError(f"{path} is a file; give the model directory that holds {CONFIG_NAME}")
    text = str(path_or_repo_id)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise ModelLoadError(f"model directory {text!r} does not exist")
    return _download_from_hub(text)


def find_model_dir(path_or_repo_id: str | os.PathLike | None) -> Path:
    """resolve_model_dir, where None means the model shipped inside the package."""
    if path_or_repo_id is None:
        path_or_repo_id = default_model_dir()
        if path_or_repo_id is None:
            raise ModelLoadError("no default model ships with this build of prestissimo: "
                                 "pass a model directory or hub id")
    return resolve_model_dir(path_or_repo_id)


def _download_from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError)
    except ImportError as e:  # pragma: no cover - huggingface_hub is a dependency
        raise ModelLoadError(f"huggingface_hub is needed to download {repo_id!r}: {e}") from None
    patterns = [CONFIG_NAME, WEIGHTS_NAME]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=not hub_online()))
    except GatedRepoError:
        raise ModelLoadError(
            f"{repo_id!r} is a gated repository: accept its licence on the hub page, then log in "
            f"with `huggingface-cli login` (or set HF_TOKEN) and try again"
        ) from None
    except RepositoryNotFoundError:
        raise ModelLoadError(f"no model {repo_id!r} on the Hugging Face hub (or it is private)") from None
    except LocalEntryNotFoundError:
        raise ModelLoadError(
            f"{repo_id!r} is not in the local cache and the hub cannot be reached (offline?). "
            f"Download it on a connected machine (huggingface-cli download {repo_id}) and pass the directory"
        ) from None
    except Exception as e:  # network errors come in many types
        raise ModelLoadError(f"could not download {repo_id!r}: {type(e).__name__}: {str(e).splitlines()[0]}") from None


def hub_online(timeout: float = 3.0) -> bool:
    """Whether the hub can be used now: not forced offline and its host resolves and answers.

    Checked up front because huggingface_hub retries unreachable hosts with backoff for about a
    minute before failing, which looks like a hang to a user without a network.
    """
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false", "no"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / CONFIG_NAME
    if not path.is_file():
        raise ModelLoadError(f"{model_dir} has no {CONFIG_NAME}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{path} is not valid JSON: {e}") from None


def read_state_dict(model_dir: Path) -> dict[str, torch.Tensor]:
    """Weights from model.safetensors, else model.ckpt (tensors only)."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    st, ckpt = model_dir / WEIGHTS_NAME, model_dir / LEGACY_WEIGHTS_NAME
    if st.is_file():
        try:
            return load_file(str(st))
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelLoadError(f"{st} is corrupt or truncated: {e}") from None
    if ckpt.is_file():
        try:
            obj = torch.load(str(ckpt), map_location="cpu", weights_only=True)
        except Exception as e:  # weights_only refuses pickled code; corrupt zips raise RuntimeError
            raise ModelLoadError(f"{ckpt} could not be read safely (tensors only): {e}") from None
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise ModelLoadError(f"{ckpt} does not contain a state dict")
        return obj
    raise ModelLoadError(f"{model_dir} has neither {WEIGHTS_NAME} nor {LEGACY_WEIGHTS_NAME}")


def normalize_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept weight norm saved by ``torch.nn.utils.parametrizations`` under the legacy weight_g/weight_v names."""
    out = {}
    for key, value in state.items():
        key = key.replace(".parametrizations.weight.original0", ".weight_g")
        key = key.replace(".parametrizations.weight.original1", ".weight_v")
        out[key] = value
    return out


def check_state_dict(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], limit: int = 20) -> None:
    """Raise ModelLoadError naming missing, unexpected and misshapen keys."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = sorted(k for k in set(expected) & set(given) if tuple(expected[k].shape) != tuple(given[k].shape))
    if not (missing or unexpected or shapes):
        return

    def listing(keys: list[str], fmt=lambda k: k) -> str:
        more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
        return ", ".join(fmt(k) for k in keys[:limit]) + more

    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): {listing(missing)}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {listing(unexpected)}")
    if shapes:
        parts.append("shape mismatches: " + listing(
            shapes, lambda k: f"{k} checkpoint {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"))
    raise ModelLoadError("checkpoint does not match the model config: " + "; ".join(parts))


def atomic_write_bytes(path: Path, write) -> None:
    """Write via a temporary file in the same directory, then rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_model_dir(model_dir: Path, config: dict[str, Any], state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    atomic_write_bytes(model_dir / WEIGHTS_NAME, lambda p: save_file(tensors, p, metadata={"format": "pt"}))
    atomic_write_bytes(model_dir / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(config, indent=2) + "\n"))


def default_model_dir() -> Path | None:
    """The model shipped inside the package, if this build has one."""
    path = Path(__file__).resolve().parent.parent / "assets" / "default_model"
    return path if (path / CONFIG_NAME).is_file() else None
