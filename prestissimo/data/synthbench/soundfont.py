"""Real instrument sounds for synthbench: notes played by a General MIDI soundfont through FluidSynth.

Optional. synthbench's own oscillators cover sine/square/saw/pluck/bell/organ; a prompt that names a
piano, a guitar or a flute is outside that distribution. With a GM soundfont (Debian:
`timgm6mb-soundfont`, 6 MB) and FluidSynth (Debian: `fluidsynth`; Python: `pip install pyfluidsynth`,
the `fluidsynth` extra) the same melodies and notes are also played on the instruments below.
Reverb and chorus are off, so a render is a deterministic function of its notes, like every other
synthbench clip.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: synthbench instrument name -> General MIDI program (0-based), bank 0.
GM_PROGRAMS = {"piano": 0, "marimba": 12, "guitar": 24, "strings": 48, "trumpet": 56, "flute": 73}
#: Where Debian/Ubuntu and other distributions install a GM soundfont, smallest first.
SOUNDFONT_SEARCH_PATHS = (
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
)
GAIN = 0.5  # FluidSynth's master gain: loud enough for 16-bit output to keep quiet notes, below clipping
VELOCITY = 100


class FluidSynthUnavailable(RuntimeError):
    """A soundfont was asked for, but pyfluidsynth or the FluidSynth library is missing."""


@dataclass(frozen=True)
class NoteEvent:
    """One note: MIDI pitch, onset and held duration in seconds."""

    midi: int
    start: float
    seconds: float


def fluidsynth_available() -> bool:
    """True when pyfluidsynth imports and finds the FluidSynth library."""
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def find_soundfont() -> Path | None:
    """The first GM soundfont installed in a standard place, or None."""
    for candidate in SOUNDFONT_SEARCH_PATHS:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def check_soundfont(path: str | Path) -> Path:
    """The soundfont path, after checking that it exists and that FluidSynth can be loaded: the errors
    a user can act on, raised before any clip is rendered."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"soundfont {str(path)!r} is not a file (a GM .sf2 file, e.g. Debian's "
                                "timgm6mb-soundfont installs /usr/share/sounds/sf2/TimGM6mb.sf2)")
    if not fluidsynth_available():
        raise FluidSynthUnavailable("rendering with a soundfont needs FluidSynth: `pip install pyfluidsynth` and the "
                           "FluidSynth library (Debian/Ubuntu: apt install fluidsynth; macOS: brew install fluid-synth)")
    with _synth(path, 16000):  # a corrupt file fails here, not in a worker halfway through a dataset
        pass
    return path


@contextmanager
def _synth(soundfont: str | Path, sample_rate: int) -> Iterator[tuple[Any, int]]:
    """(FluidSynth synthesizer with `soundfont` loaded, its font id); deleted on exit."""
    import fluidsynth

    synth = fluidsynth.Synth(gain=GAIN, samplerate=float(sample_rate),
                             **{"synth.reverb.active": 0, "synth.chorus.active": 0})
    try:
        font = synth.sfload(str(soundfont))
        if font < 0:
            raise ValueError(f"FluidSynth could not load soundfont {str(soundfont)!r}: not a valid .sf2 file")
        yield synth, font
    finally:
        synth.delete()


def render_notes(soundfont: str | Path, instrument: str, notes: Sequence[NoteEvent], n_samples: int,
                 sample_rate: int) -> np.ndarray:
    """Mono float64 [n_samples]: `notes` played on `instrument` (a key of GM_PROGRAMS), each note
    released after its duration and left to ring out; anything past n_samples is cut."""
    if instrument not in GM_PROGRAMS:
        raise ValueError(f"unknown soundfont instrument {instrument!r}; choose from {tuple(GM_PROGRAMS)}")
    with _synth(soundfont, sample_rate) as (synth, font):
        synth.program_select(0, font, 0, GM_PROGRAMS[instrument])
        events = sorted([(round(n.start * sample_rate), 1, n.midi) for n in notes]
                        + [(round((n.start + n.seconds) * sample_rate), 0, n.midi) for n in notes])
        chunks, written = [], 0
        for at, is_on, midi in events:  # note-offs sort before note-ons at the same sample
            at = min(max(at, written), n_samples)
            if at > written:
                chunks.append(synth.get_samples(at - written))
                written = at
            if is_on:
                synth.noteon(0, int(midi), VELOCITY)
            else:
                synth.noteoff(0, int(midi))
        if written < n_samples:
            chunks.append(synth.get_samples(n_samples - written))
    stereo = np.concatenate(chunks).astype(np.float64).reshape(-1, 2) / 32768.0
    return stereo.mean(axis=1)  # synthbench pans the mono signal itself
