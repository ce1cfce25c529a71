"""prestissimo: fast text-to-audio generation with Stable Audio Open compatible models."""

from .pipeline import TextToAudio

__version__ = "0.1.0"
__all__ = ["TextToAudio", "__version__"]
