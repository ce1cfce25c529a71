"""Datasets and audio I/O."""

from .audio import save_wav

__all__ = ["save_wav"]
