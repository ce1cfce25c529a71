"""Text-audio alignment from a joint embedding space (the CLAP score).

stable-audio-metrics reports the plain mean cosine; audioldm_eval's CLAP_T is the same number x 100.
"""

from __future__ import annotations

import numpy as np


def clap_score(text_embeddings: np.ndarray, audio_embeddings: np.ndarray) -> float:
    """Mean cosine similarity of paired rows of [N, D] text and audio embeddings, in [-1, 1].

    Rows are normalised here, so raw or already unit-norm embeddings give the same score.
    """
    t = np.atleast_2d(np.asarray(text_embeddings, dtype=np.float64))
    a = np.atleast_2d(np.asarray(audio_embeddings, dtype=np.float64))
    if t.shape != a.shape or t.ndim != 2 or t.shape[0] == 0:
        raise ValueError(f"need paired [N, D] embeddings of one shape, got {t.shape} and {a.shape}")
    if not (np.isfinite(t).all() and np.isfinite(a).all()):
        raise ValueError("embeddings contain NaN or infinite values")
    t_norm, a_norm = np.linalg.norm(t, axis=1), np.linalg.norm(a, axis=1)
    if (t_norm == 0).any() or (a_norm == 0).any():
        raise ValueError("cosine similarity is undefined for an all-zero embedding")
    cos = np.einsum("nd,nd->n", t, a) / (t_norm * a_norm)
    return float(np.clip(cos, -1.0, 1.0).mean())
