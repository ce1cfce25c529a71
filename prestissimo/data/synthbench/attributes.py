"""The structured attributes behind every synthbench caption, and how they are drawn.

Every value range is chosen so that neighbouring classes are separated by a gap (tempo, register,
loudness, panning): the estimators in `prestissimo.evaluation.adherence` then read a class back
from audio without ambiguity on ground-truth clips, and a model is scored on what a listener hears.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prestissimo.data.synthbench.soundfont import GM_PROGRAMS

FAMILIES = ("tonal", "drums", "noise")
FAMILY_PROBABILITIES = (0.5, 0.25, 0.25)

INSTRUMENTS = ("sine", "square", "sawtooth", "pluck", "bell", "organ")
# Played from a General MIDI soundfont (synthbench/soundfont.py), drawn only when one is given.
SOUNDFONT_INSTRUMENTS = tuple(GM_PROGRAMS)
# Instruments whose sound is sustained by an oscillator (vibrato makes sense); plucks and bells decay.
SUSTAINED_INSTRUMENTS = ("sine", "square", "sawtooth", "organ")
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor")
SCALE_STEPS = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}

# MIDI range of the tonic for each register; melodies stay within an octave above it.
REGISTER_TONIC_MIDI = {"low": (36, 43), "mid": (55, 60), "high": (72, 79)}
TEMPO_BPM = {"slow": (60, 80), "moderate": (96, 116), "fast": (132, 160)}
LOUDNESS_RMS_DB = {"quiet": (-40.0, -36.0), "moderate": (-30.0, -26.0), "loud": (-20.0, -16.0)}
PAN_POSITION = {"left": (-0.9, -0.6), "center": (-0.1, 0.1), "right": (0.6, 0.9)}

TONAL_KINDS = ("melody", "note")
ARTICULATIONS = ("staccato", "legato")
DRUM_DENSITIES = ("sparse", "busy")
NOISE_TEXTURES = ("steady", "sweep", "rain")
NOISE_COLOURS = ("white", "pink", "brown")
SWEEP_DIRECTIONS = ("up", "down")
FADES = ("none", "in", "out")


def _choice(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def draw_attributes(rng: np.random.Generator, family: str | None = None,
                    instruments: tuple[str, ...] = INSTRUMENTS) -> dict[str, Any]:
    """Draw one clip's attributes. The dict is JSON-serialisable and fully determines the render
    together with the clip's seed. Tonal clips draw their instrument from `instruments` (add
    SOUNDFONT_INSTRUMENTS when a soundfont is available)."""
    if family is None:
        family = FAMILIES[int(rng.choice(len(FAMILIES), p=FAMILY_PROBABILITIES))]
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}")
    loudness = _choice(rng, tuple(LOUDNESS_RMS_DB))
    pan = _choice(rng, tuple(PAN_POSITION))
    attrs: dict[str, Any] = {
        "family": family,
        "loudness": loudness,
        "rms_db": round(_uniform(rng, LOUDNESS_RMS_DB[loudness]), 2),
        "pan": pan,
        "pan_position": round(_uniform(rng, PAN_POSITION[pan]), 3),
    }
    if family == "tonal":
        attrs.update(_draw_tonal(rng, instruments))
    elif family == "drums":
        attrs.update(_draw_drums(rng))
    else:
        attrs.update(_draw_noise(rng))
    return attrs


def _draw_tempo(rng: np.random.Generator) -> dict[str, Any]:
    tempo = _choice(rng, tuple(TEMPO_BPM))
    lo, hi = TEMPO_BPM[tempo]
    return {"tempo": tempo, "bpm": int(rng.integers(lo, hi + 1))}


def _draw_tonal(rng: np.random.Generator, instruments: tuple[str, ...]) -> dict[str, Any]:
    unknown = set(instruments) - set(INSTRUMENTS) - set(SOUNDFONT_INSTRUMENTS)
    if unknown:
        raise ValueError(f"unknown instruments {sorted(unknown)}; choose from {INSTRUMENTS + SOUNDFONT_INSTRUMENTS}")
    kind = TONAL_KINDS[int(rng.choice(2, p=(0.75, 0.25)))]
    instrument = _choice(rng, instruments)
    register = _choice(rng, tuple(REGISTER_TONIC_MIDI))
    lo, hi = REGISTER_TONIC_MIDI[register]
    tonic_midi = int(rng.integers(lo, hi + 1))
    out: dict[str, Any] = {
        "kind": kind,
        "instrument": instrument,
        "register": register,
        "tonic_midi": tonic_midi,
    }
    sustained = instrument in SUSTAINED_INSTRUMENTS
    if kind == "melody":
        mode = _choice(rng, MODES)
        articulation = _choice(rng, ARTICULATIONS)
        out.update(_draw_tempo(rng))
        out.update(
            mode=mode,
            tonic=NOTE_NAMES[tonic_midi % 12],
            articulation=articulation,
            # Vibrato needs notes long enough to hear a few cycles: legato and sustained timbres only.
            vibrato=bool(sustained and articulation == "legato" and rng.random() < 0.5),
        )
    else:
        out.update(vibrato=bool(sustained and rng.random() < 0.5))
    return out


def _draw_drums(rng: np.random.Generator) -> dict[str, Any]:
    out = _draw_tempo(rng)
    out["density"] = _choice(rng, DRUM_DENSITIES)
    return out


def _draw_noise(rng: np.random.Generator) -> dict[str, Any]:
    texture = _choice(rng, NOISE_TEXTURES)
    out: dict[str, Any] = {"texture": texture, "fade": _choice(rng, FADES)}
    if texture == "steady":
        out["colour"] = _choice(rng, NOISE_COLOURS)
    elif texture == "sweep":
        out["direction"] = _choice(rng, SWEEP_DIRECTIONS)
    return out
