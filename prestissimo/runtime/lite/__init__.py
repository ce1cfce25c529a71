"""A torch-free inference engine: numpy and the `tokenizers` library only, for the fastest start.

It runs the shipped kind of model (rectified-flow DiT, Oobleck decoder, BERT text encoder) with the
same weights, the same computation and the same seeded noise as the torch pipeline; see ``engine``.
"""

from .engine import LiteTextToAudio, LiteUnsupported, unsupported_reason

__all__ = ["LiteTextToAudio", "LiteUnsupported", "unsupported_reason"]
