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
