"""Making generation fast: inference copies of the networks, precision switches, measurement,
and a torch-free engine (``lite``) for the fastest start."""

from __future__ import annotations

from typing import Any

__all__ = ["PRECISIONS", "FastPath", "RuntimeOptions"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing prestissimo.runtime.lite does not import torch.
    if name in __all__:
        from . import fast

        return getattr(fast, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
