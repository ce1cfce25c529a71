"""Dataset manifests: one row per clip with an audio path and a caption.

Two formats are read: JSON Lines (`{"path": ..., "caption": ..., "seconds": ..., ...}`, what
synthbench writes) and CSV, including AudioCaps' own files (`audiocap_id, youtube_id, start_time,
caption`, audio found as `<youtube_id>.wav|.flac|...` or `Y<youtube_id>...` next to the CSV or in
an `audio/` folder). Relative paths are resolved against the manifest's folder.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
PATH_KEYS = ("path", "audio", "audio_path", "file", "file_name", "filename", "location")
CAPTION_KEYS = ("caption", "text", "prompt", "description")


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file and the line."""


@dataclass(frozen=True)
class ManifestEntry:
    path: Path
    caption: str
    seconds: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    mentioned: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """A file-name-safe identifier (the audio file's stem)."""
        return self.path.stem


def _first(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        if row.get(k) not in (None, ""):
            return row[k]
    return None


def _audiocaps_path(root: Path, youtube_id: str) -> Path:
    for folder in (root, root / "audio"):
        for stem in (youtube_id, f"Y{youtube_id}"):
            for suffix in AUDIO_SUFFIXES:
                candidate = folder / f"{stem}{suffix}"
                if candidate.exists():
                    return candidate
    return root / f"{youtube_id}.wav"  # reported as missing when loaded


def _entry(row: dict[str, Any], root: Path, where: str) -> ManifestEntry:
    caption = _first(row, CAPTION_KEYS)
    if not isinstance(caption, str) or not caption.strip():
        raise ManifestError(f"{where}: no caption (looked for {', '.join(CAPTION_KEYS)})")
    raw_path = _first(row, PATH_KEYS)
    if raw_path is not None:
        path = Path(str(raw_path))
        path = path if path.is_absolute() else root / path
    elif row.get("youtube_id"):
        path = _audiocaps_path(root, str(row["youtube_id"]))
    else:
        raise ManifestError(f"{where}: no audio path (looked for {', '.join(PATH_KEYS)} or youtube_id)")
    seconds = row.get("seconds")
    try:
        seconds = float(seconds) if seconds not in (None, "") else None
    except (TypeError, ValueError) as err:
        raise ManifestError(f"{where}: seconds is not a number: {seconds!r}") from err
    attrs = row.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise ManifestError(f"{where}: attributes must be an object")
    return ManifestEntry(path, caption.strip(), seconds, attrs, tuple(row.get("mentioned") or ()))


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    """Read a .jsonl/.json-lines or .csv manifest; raises ManifestError with the line at fault."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    root = path.parent
    entries: list[ManifestEntry] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            for lineno, row in enumerate(csv.DictReader(fh), start=2):
                entries.append(_entry(row, root, f"{path}:{lineno}"))
    else:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ManifestError(f"{path}:{lineno}: not valid JSON ({err.msg})") from err
                if not isinstance(row, dict):
                    raise ManifestError(f"{path}:{lineno}: each line must be a JSON object")
                entries.append(_entry(row, root, f"{path}:{lineno}"))
    if not entries:
        raise ManifestError(f"manifest has no rows: {path}")
    return entries
