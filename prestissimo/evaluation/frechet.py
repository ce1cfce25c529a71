"""Fréchet distance between Gaussian fits of two embedding sets (the FAD / FD_openl3 / FD-PANNs math).

FD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)). The trace of the matrix square root is taken
as sum_i sqrt(lambda_i) over the eigenvalues of the symmetric PSD matrix sqrt(S1) S2 sqrt(S1), which
has the same spectrum as S1 S2. Two symmetric eigendecompositions replace scipy.linalg.sqrtm: no
complex round-off to discard, no failure on singular covariances (fewer clips than dimensions).
"""

from __future__ import annotations

import numpy as np


def embedding_set(x: np.ndarray, name: str, purpose: str = "to estimate a covariance") -> np.ndarray:
    """Validate an [N >= 2, D] finite embedding set and return it as float64."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be [N, D] embeddings, got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 embeddings {purpose}, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def gaussian_statistics(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] (float64) of [N, D] embeddings, N >= 2."""
    x = embedding_set(embeddings, "embeddings")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a (numerically) PSD matrix; negative round-off eigenvalues -> 0."""
    eigvals, eigvecs = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr (S1 S2)^(1/2) for PSD S1, S2 via the symmetric form sqrt(S1) S2 sqrt(S1)."""
    root1 = _psd_sqrt(sigma1)
    inner = root1 @ sigma2 @ root1
    eigvals = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    return float(np.sqrt(np.clip(eigvals, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2), clamped at >= 0."""
    mu1, mu2 = (np.atleast_1d(np.asarray(m, dtype=np.float64)) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(s, dtype=np.float64)) for s in (sigma1, sigma2))
    dim = mu1.shape[0]
    if mu1.ndim != 1 or mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(
            f"inconsistent Gaussian statistics: mu1 {mu1.shape}, sigma1 {sigma1.shape}, "
            f"mu2 {mu2.shape}, sigma2 {sigma2.shape}"
        )
    diff = mu1 - mu2
    fd = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return max(float(fd), 0.0)


def frechet_distance_between(x: np.ndarray, y: np.ndarray) -> float:
    """FD between the Gaussian fits of two embedding sets [N, D] and [M, D]."""
    x, y = embedding_set(x, "x"), embedding_set(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"embedding dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    return frechet_distance(*gaussian_statistics(x), *gaussian_statistics(y))
