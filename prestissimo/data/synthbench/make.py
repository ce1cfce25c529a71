"""Write a synthbench dataset: WAV files plus a manifest.jsonl, in parallel, reproducibly."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from prestissimo.data.synthbench.attributes import INSTRUMENTS, SOUNDFONT_INSTRUMENTS, draw_attributes
from prestissimo.data.synthbench.captions import caption
from prestissimo.data.synthbench.render import clip_rng, render_clip
from prestissimo.data.synthbench.soundfont import check_soundfont
from prestissimo.models.loading import atomic_write_bytes

MANIFEST_NAME = "manifest.jsonl"


@dataclass(frozen=True)
class SynthbenchSpec:
    """What to generate. Clip i depends only on (seed, i) and the rendering settings. With a GM
    `soundfont`, tonal clips also draw soundfont instruments (piano, guitar, ...), so the same seed
    gives a different dataset than without one."""

    n: int
    seed: int = 0
    seconds: float = 5.0
    sample_rate: int = 44100
    soundfont: str | None = None

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError(f"n must be positive, got {self.n}")
        if not 0.5 <= self.seconds <= 60.0:
            raise ValueError(f"seconds must be within [0.5, 60], got {self.seconds}")
        if not 8000 <= self.sample_rate <= 192000:
            raise ValueError(f"sample_rate must be within [8000, 192000], got {self.sample_rate}")
        if self.soundfont is not None:
            check_soundfont(self.soundfont)

    @property
    def instruments(self) -> tuple[str, ...]:
        return INSTRUMENTS + SOUNDFONT_INSTRUMENTS if self.soundfont else INSTRUMENTS


def synthesize(spec: SynthbenchSpec, index: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Clip `index`: (stereo float32 [2, T], manifest row without the path)."""
    rng = clip_rng(spec.seed, index)
    attrs = draw_attributes(rng, instruments=spec.instruments)
    audio = render_clip(attrs, rng, spec.sample_rate, spec.seconds, spec.soundfont)
    text, mentioned = caption(attrs, rng)
    row = {"caption": text, "seconds": spec.seconds, "attributes": attrs, "mentioned": mentioned,
           "synthbench": {"seed": spec.seed, "index": index}}
    return audio, row


def iter_clips(spec: SynthbenchSpec) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    """Clips in memory, in order (for calibration and tests: nothing written)."""
    for i in range(spec.n):
        yield synthesize(spec, i)


def _write_range(args: tuple[SynthbenchSpec, str, int, int]) -> list[dict[str, Any]]:
    spec, out_dir, start, stop = args
    rows = []
    for i in range(start, stop):
        audio, row = synthesize(spec, i)
        name = f"audio/{i:06d}.wav"
        atomic_write_bytes(Path(out_dir) / name,
                           lambda tmp: sf.write(tmp, audio.T, spec.sample_rate, subtype="PCM_16", format="WAV"))
        rows.append({"path": name, **row})
    return rows


def make_synthbench(spec: SynthbenchSpec, out_dir: str | Path, workers: int | None = None,
                    progress: bool = True) -> Path:
    """Render spec.n clips into out_dir/audio/*.wav (16-bit PCM) and write out_dir/manifest.jsonl
    (paths relative to out_dir). The manifest is written last and atomically, so a folder with a
    manifest is always complete."""
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    chunk = max(1, min(50, spec.n // (workers * 4) or 1))
    jobs = [(spec, str(out), s, min(spec.n, s + chunk)) for s in range(0, spec.n, chunk)]
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=spec.n, desc="synthbench", unit="clip", disable=not progress)
    # spawn, not fork: a parent that has already loaded FluidSynth (check_soundfont) hangs forked
    # children in FluidSynth's inherited locks.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=spawn) if workers > 1 else nullcontext() as pool:
        for part in (pool.map if pool else map)(_write_range, jobs):
            rows += part
            bar.update(len(part))
    bar.close()
    manifest = out / MANIFEST_NAME
    text = "".join(json.dumps(row) + "\n" for row in rows)
    atomic_write_bytes(manifest, lambda tmp: Path(tmp).write_text(text))
    (out / "synthbench.json").write_text(json.dumps(asdict(spec), indent=2) + "\n")
    return manifest
