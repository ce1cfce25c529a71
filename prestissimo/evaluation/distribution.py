"""RBF MMD^2 between sets of embeddings (the unbiased estimator of Gretton et al. 2012): compares
whole distributions without the Fréchet distance's Gaussian assumption; the bandwidth comes from the
median heuristic so it needs no tuning per embedding model."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist, pdist

from prestissimo.evaluation.frechet import embedding_set

UNBIASED = "for the unbiased estimator"


def median_heuristic_bandwidth(x: np.ndarray, y: np.ndarray) -> float:
    """Median Euclidean distance between distinct points of the pooled sample (1.0 if all coincide).

    Pooling keeps the bandwidth, and therefore MMD, symmetric in (x, y).
    """
    pooled = np.concatenate([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)])
    median = float(np.median(pdist(pooled, "euclidean")))
    return median if median > 0.0 else 1.0


def rbf_mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """Unbiased MMD^2 with k(a, b) = exp(-||a - b||^2 / (2 h^2)), h = median heuristic by default.

    Diagonal terms k(x_i, x_i) are excluded, so the estimate is unbiased and can be slightly negative
    when both sets come from one distribution; it is not clamped, to keep that unbiasedness.
    """
    x, y = embedding_set(x, "x", UNBIASED), embedding_set(y, "y", UNBIASED)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"embedding dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    h = median_heuristic_bandwidth(x, y) if bandwidth is None else float(bandwidth)
    if h <= 0.0:
        raise ValueError(f"bandwidth must be positive, got {h}")
    scale = -1.0 / (2.0 * h * h)
    k_xx = np.exp(scale * pdist(x, "sqeuclidean")).mean()  # mean over i < j == mean over i != j
    k_yy = np.exp(scale * pdist(y, "sqeuclidean")).mean()
    k_xy = np.exp(scale * cdist(x, y, "sqeuclidean")).mean()
    return float(k_xx + k_yy - 2.0 * k_xy)

