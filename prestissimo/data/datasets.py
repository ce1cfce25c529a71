"""Training datasets: audio clips from a manifest (pre-encoded latents: `prestissimo.data.latents`).

Both implement the loop's Dataset protocol: `get(index, rng)` returns one item or None when the
item must be skipped (the loop trains on the rest of the batch), and `collate(items)`. Problems are
counted by reason and reported (`skipped`), never raised mid-epoch.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf
import torch

from prestissimo.data.audio import AudioLoadError, load_audio, resample
from prestissimo.data.manifest import ManifestEntry

log = logging.getLogger(__name__)

SILENCE_PEAK = 1e-4


@dataclass(frozen=True)
class AudioSpec:
    """How clips are shaped for a model: rate, channels, fixed length."""

    sample_rate: int
    channels: int
    seconds: float
    min_seconds: float = 0.25  # shorter files are skipped, not padded into mostly-silence

    @property
    def length(self) -> int:
        return int(round(self.seconds * self.sample_rate))


def fit_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Mono -> stereo by duplication, stereo -> mono by averaging; more channels keep the first ones."""
    if audio.shape[0] == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    if audio.shape[0] == 1:
        return np.repeat(audio, channels, axis=0)
    return audio[:channels]


def crop_or_pad(audio: np.ndarray, length: int, rng: np.random.Generator | None) -> tuple[np.ndarray, int]:
    """Random crop (start drawn from rng; 0 when rng is None) or zero-pad at the end to `length`.
    Returns the clip and the start offset in samples."""
    n = audio.shape[-1]
    if n >= length:
        start = int(rng.integers(0, n - length + 1)) if rng is not None else 0
        return audio[:, start:start + length], start
    return np.pad(audio, ((0, 0), (0, length - n))), 0


class AudioDataset:
    """Manifest rows -> {"audio": [C, T] float32, "caption", "seconds_start", "seconds_total"}."""

    def __init__(self, entries: Sequence[ManifestEntry], spec: AudioSpec, random_crop: bool = True):
        self.spec, self.random_crop = spec, random_crop
        self.skipped: Counter[str] = Counter()
        self.entries = [e for e in entries if self._usable(e)]
        if self.skipped:
            log.warning("skipped %d of %d files before training: %s", sum(self.skipped.values()), len(entries),
                        dict(self.skipped))

    def _usable(self, entry: ManifestEntry) -> bool:
        try:
            info = sf.info(str(entry.path))
        except Exception:  # soundfile raises RuntimeError/LibsndfileError/OSError for missing or corrupt files
            self.skipped["unreadable"] += 1
            return False
        if info.frames < self.spec.min_seconds * info.samplerate:
            self.skipped["too short"] += 1
            return False
        return True

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, index: int, rng: np.random.Generator) -> dict[str, Any] | None:
        entry = self.entries[index]
        try:
            audio, sr = load_audio(entry.path)
        except AudioLoadError:
            self._skip("unreadable", entry)
            return None
        audio = fit_channels(resample(audio, sr, self.spec.sample_rate), self.spec.channels)
        total = audio.shape[-1] / self.spec.sample_rate
        if np.abs(audio).max() < SILENCE_PEAK:
            self._skip("silent", entry)
            return None
        for _ in range(4):  # a random crop can land in a pause: draw again rather than train on silence
            clip, start = crop_or_pad(audio, self.spec.length, rng if self.random_crop else None)
            if np.abs(clip).max() >= SILENCE_PEAK:
                break
        else:
            self._skip("silent crop", entry)
            return None
        return {"audio": torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32)), "caption": entry.caption,
                "seconds_start": start / self.spec.sample_rate, "seconds_total": min(total, self.spec.seconds)}

    def _skip(self, reason: str, entry: ManifestEntry) -> None:
        if self.skipped[reason] < 5:
            log.warning("skipping %s file %s", reason, entry.path)
        self.skipped[reason] += 1

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"audio": torch.stack([i["audio"] for i in items]), "caption": [i["caption"] for i in items],
                "seconds_start": [i["seconds_start"] for i in items],
                "seconds_total": [i["seconds_total"] for i in items]}
