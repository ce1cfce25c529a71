"""Shared fixtures: tiny model directories built offline, deterministic seeds."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


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
