"""Diversity of generated audio measured in an embedding space.

``conditional_diversity`` with the cosine metric on CLAP audio embeddings is the CCDS of
docs/algorithms.md §1.9 (our reading of ARC's score, whose exact formula was not published):
CCDS = mean_p mean_{i<j} (1 - cos(e_pi, e_pj)) over K generations per prompt. It answers "does the
model give different audio for one prompt?", which a distribution metric such as FD cannot.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.spatial.distance import pdist

Metric = Literal["cosine", "euclidean"]
METRICS: tuple[str, ...] = ("cosine", "euclidean")


def mean_pairwise_distance(embeddings: np.ndarray, metric: Metric = "cosine") -> float:
    """Mean distance over unordered pairs i < j of [N, D] embeddings (N >= 2); cosine = 1 - cos."""
    x = np.asarray(embeddings, dtype=np.float64)
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need [N >= 2, D] embeddings, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or infinite values")
    if metric == "cosine" and (np.linalg.norm(x, axis=1) == 0).any():
        raise ValueError("cosine distance is undefined for an all-zero embedding")
    return max(float(pdist(x, metric).mean()), 0.0)  # cosine round-off can give -1e-16


def conditional_diversity(embeddings: np.ndarray, metric: Metric = "cosine") -> float:
    """Mean over prompts of the mean pairwise distance among that prompt's K generations.

    embeddings: [P, K, D] (K >= 2). 0 when every prompt's generations are identical; invariant to
    the order of generations and of prompts.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"expected [prompts, generations, dim] embeddings, got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("no prompts")
    return float(np.mean([mean_pairwise_distance(group, metric) for group in x]))


def unconditional_diversity(embeddings: np.ndarray, metric: Metric = "cosine") -> float:
    """Mean pairwise distance across all clips [N, D], whatever their prompts (a spread measure)."""
    return mean_pairwise_distance(embeddings, metric)
