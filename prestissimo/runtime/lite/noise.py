"""Gaussian noise that equals ``torch.randn(shape, generator=torch.Generator().manual_seed(seed))``.

The torch-free engine draws the same noise as the torch pipeline for a seed, so ``--seed 0`` gives the
same clip on either engine (up to float rounding). torch's CPU generator is a 32-bit Mersenne Twister
seeded with ``init_genrand(seed mod 2^32)``; ``randn`` of 16 or more values turns 24-bit uniforms into
normals by Box-Muller in blocks of 16 (u1 from the first 8, u2 from the last 8); when the count is
not a multiple of 16 it draws 16 more uniforms and recomputes the last 16 values from them. numpy's
MT19937 with legacy seeding is the same generator, so its raw 32-bit words reproduce that stream.
"""

from __future__ import annotations

import os

import numpy as np

_BLOCK = 16


class TorchCompatibleNormal:
    """A seeded stream of standard normals; successive calls continue the stream as torch's do."""

    def __init__(self, seed: int | None = None):
        self.seed = int.from_bytes(os.urandom(8), "little") if seed is None else int(seed)
        self._bits = np.random.MT19937(0)
        self._bits._legacy_seeding(self.seed & 0xFFFFFFFF)

    def _uniform(self, n: int) -> np.ndarray:
        words = self._bits.random_raw(n).astype(np.uint32)
        return (words & np.uint32((1 << 24) - 1)).astype(np.float32) * np.float32(2.0**-24)

    @staticmethod
    def _box_muller(u: np.ndarray) -> np.ndarray:
        blocks = u.reshape(-1, _BLOCK)
        u1, u2 = 1 - blocks[:, :_BLOCK // 2], blocks[:, _BLOCK // 2:]
        radius = np.sqrt(-2 * np.log(u1))
        theta = 2 * np.pi * u2
        return np.concatenate([radius * np.cos(theta), radius * np.sin(theta)], axis=1).reshape(-1)

    def randn(self, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape))
        if n < _BLOCK:
            raise ValueError(f"torch draws fewer than {_BLOCK} normals differently; asked for {n}")
        full = n // _BLOCK * _BLOCK
        out = np.empty(n, dtype=np.float32)
        out[:full] = self._box_muller(self._uniform(n)[:full])  # torch draws n uniforms first
        if n != full:  # then recomputes the last block from 16 fresh ones
            out[n - _BLOCK:] = self._box_muller(self._uniform(_BLOCK))
        return out.reshape(shape)
