"""prestissimo: fast text-to-audio generation with Stable Audio Open compatible models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pipeline import TextToAudio

__version__ = "0.1.0"
__all__ = ["TextToAudio", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so that the torch-free engine (prestissimo.runtime.lite) can run without importing torch.
    if name == "TextToAudio":
        from .pipeline import TextToAudio

        return TextToAudio
    raise AttributeError(f"module 'prestissimo' has no attribute {name!r}")
