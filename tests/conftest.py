"""Shared fixtures: tiny model directories built offline, deterministic seeds."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


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


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from prestissimo.models.factory import create_random_model

    return create_random_model("tiny", tmp_path_factory.mktemp("tiny_model"), seed=0)


@pytest.fixture(scope="session")
def tiny_v_model_dir(tmp_path_factory):
    from prestissimo.models.factory import create_random_model

    return create_random_model("tiny-1.0", tmp_path_factory.mktemp("tiny_v_model"), seed=0)
