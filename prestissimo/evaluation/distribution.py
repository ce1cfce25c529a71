"""Distances between sets of embeddings or label distributions, beyond the Gaussian Fréchet fit.

* RBF MMD^2 (the unbiased estimator of Gretton et al. 2012): compares whole distributions without a
  Gaussian assumption; bandwidth from the median heuristic so it needs no tuning per embedding model.
* KL between per-clip label distributions (the KL_passt / KL-PANNs kind of metric), given tagger outputs.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist, pdist


def _embedding_set(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be [N, D] embeddings, got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 embeddings for the unbiased estimator, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


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
    x, y = _embedding_set(x, "x"), _embedding_set(y, "y")
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


def label_kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = 1e-10) -> float:
    """Mean over clips of KL(p_i || q_i) for [N, C] non-negative label scores (each row renormalised).

    eps keeps log finite where q has zeros; KL(p || p) = 0 exactly and KL >= 0 (clamped round-off).
    """
    p, q = np.atleast_2d(np.asarray(p, dtype=np.float64)), np.atleast_2d(np.asarray(q, dtype=np.float64))
    if p.shape != q.shape or p.ndim != 2:
        raise ValueError(f"label distributions must both be [N, C] of one shape, got {p.shape} and {q.shape}")
    if (p < 0).any() or (q < 0).any() or not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise ValueError("label distributions must be finite and non-negative")
    p = p / np.clip(p.sum(axis=1, keepdims=True), eps, None)
    q = q / np.clip(q.sum(axis=1, keepdims=True), eps, None)
    terms = np.where(p > 0, p * (np.log(np.clip(p, eps, None)) - np.log(np.clip(q, eps, None))), 0.0)
    return float(np.clip(terms.sum(axis=1), 0.0, None).mean())
