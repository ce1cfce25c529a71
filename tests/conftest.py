"""Shared fixtures: tiny model directories built offline, deterministic seeds."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# numpy engine tests: one OpenBLAS thread, as `prestissimo generate` runs it (threads spin on a busy CPU)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]


def load_script(relative_path: str) -> ModuleType:
    """A repository script outside the package (benchmarks/, recipes/) imported as a module."""
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from prestissimo.models.factory import create_random_model

    return create_random_model("tiny", tmp_path_factory.mktemp("tiny_model"), seed=0)


@pytest.fixture(scope="session")
def tiny_v_model_dir(tmp_path_factory):
    from prestissimo.models.factory import create_random_model

    return create_random_model("tiny-1.0", tmp_path_factory.mktemp("tiny_v_model"), seed=0)


@pytest.fixture(scope="session")
def pooled_model_dir(tmp_path_factory):
    """tiny with the prompt also pooled into an adaLN global vector beside seconds_total."""
    from prestissimo.models.factory import create_random_model
    from prestissimo.models.presets import preset

    c = preset("tiny")
    diffusion = c["model"]["diffusion"]
    diffusion["global_cond_ids"] = ["prompt", "seconds_total"]
    diffusion["config"].update(global_cond_type="adaLN", global_cond_dim=2 * c["model"]["conditioning"]["cond_dim"])
    return create_random_model(c, tmp_path_factory.mktemp("pooled_model"), seed=0)


def bert_model_config(global_cond_type: str = "adaLN", qk_norm: str = "ln", positions: bool = False) -> dict:
    """tiny with a BERT text encoder folder ("enc") as the shipped model has, pooled prompt in the global vector."""
    from prestissimo.models.presets import preset

    c = preset("tiny")
    cond = c["model"]["conditioning"]
    for entry in cond["configs"]:
        if entry["type"] == "t5":
            entry.update(type="text_encoder", config={"model_name": "enc", "max_length": 12})
    diffusion = c["model"]["diffusion"]
    diffusion["global_cond_ids"] = ["prompt", "seconds_total"]
    diffusion["config"].update(global_cond_type=global_cond_type, global_cond_dim=2 * cond["cond_dim"],
                               attn_kwargs={"qk_norm": qk_norm}, use_sinusoidal_emb=positions)
    return c


def make_bert_model(out_dir, config: dict, seed: int = 0):
    """A model directory with every weight random (zero-initialised layers included), so each layer matters."""
    from prestissimo import TextToAudio
    from prestissimo.models.bert import create_tiny_bert
    from prestissimo.models.config import ModelConfig
    from prestissimo.models.factory import randomize_

    create_tiny_bert(out_dir / "enc", seed=seed)
    model = TextToAudio(ModelConfig.from_dict(config), model_dir=out_dir)
    randomize_(model, seed=seed)
    model.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def bert_model_dir(tmp_path_factory):
    return make_bert_model(tmp_path_factory.mktemp("bert_model"), bert_model_config())
