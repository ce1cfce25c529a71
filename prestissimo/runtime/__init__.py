"""Making generation fast: inference copies of the networks, precision switches, measurement."""

from .fast import PRECISIONS, FastPath, RuntimeOptions

__all__ = ["PRECISIONS", "FastPath", "RuntimeOptions"]
