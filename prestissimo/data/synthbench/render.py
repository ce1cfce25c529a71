"""Render one synthbench clip from its attributes: (attributes, seed) -> stereo waveform.

The render is a pure function of its inputs, so a manifest row (attributes + seed) reproduces its
audio exactly and clips can be rendered in any order, on any number of worker processes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prestissimo.data.synthbench import synth
from prestissimo.data.synthbench.attributes import SCALE_STEPS, SOUNDFONT_INSTRUMENTS
from prestissimo.data.synthbench.soundfont import NoteEvent, render_notes

VIBRATO_HZ = 5.5
VIBRATO_SEMITONES = 0.35
FIRST_ONSET_SECONDS = 0.1
NOTE_START_SECONDS = 0.2  # a single note's onset; it is held for NOTE_HOLD of the clip
NOTE_HOLD = 0.7
NOTE_RELEASE = 0.3
GATE = {"legato": 0.95, "staccato": 0.3}  # share of a beat a melody note sounds, its release included
MELODY_RELEASE = 0.02


def clip_rng(seed: int, index: int) -> np.random.Generator:
    """Independent random stream per clip, so clip i is the same whatever the worker count."""
    return np.random.default_rng([int(seed), int(index)])


def melody_degrees(rng: np.random.Generator, n_notes: int) -> list[int]:
    """Scale degrees of a melody: starts and ends on the tonic, moves mostly by step, visits the
    third (the degree that tells major from minor) at least once, and stays within an octave."""
    if n_notes <= 1:
        return [0]
    degrees = [0]
    for _ in range(n_notes - 2):
        step = int(rng.choice([-2, -1, 1, 2, 3], p=[0.15, 0.3, 0.3, 0.15, 0.1]))
        degrees.append(int(np.clip(degrees[-1] + step, 0, 7)))
    degrees.append(0)
    if 2 not in degrees and n_notes >= 3:
        degrees[1 + int(rng.integers(n_notes - 2))] = 2
    return degrees


def degree_to_midi(tonic_midi: int, mode: str, degree: int) -> int:
    steps = SCALE_STEPS[mode]
    return tonic_midi + 12 * (degree // 7) + steps[degree % 7]


def render_note(instrument: str, midi: float, n_samples: int, sample_rate: int,
                rng: np.random.Generator, vibrato: bool) -> np.ndarray:
    """The raw tone of one note (no gating envelope), n_samples long."""
    f0 = float(synth.midi_to_hz(midi))
    if instrument == "pluck":
        return synth.karplus_strong(f0, n_samples, sample_rate, rng, decay_seconds=3.0)
    if instrument == "bell":
        return synth.fm_bell(f0, n_samples, sample_rate, decay_seconds=2.5)
    freq = np.full(n_samples, f0)
    if vibrato:
        t = np.arange(n_samples) / sample_rate
        freq = f0 * 2.0 ** (VIBRATO_SEMITONES / 12.0 * np.sin(2 * np.pi * VIBRATO_HZ * t))
    table = synth.wavetable(synth.harmonic_amplitudes(instrument, f0, sample_rate))
    return synth.oscillator(table, freq, sample_rate, phase0=float(rng.random()))


def render_tonal(attrs: dict[str, Any], n_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n_samples)
    instrument = attrs["instrument"]
    if attrs["kind"] == "note":
        start = int(NOTE_START_SECONDS * sample_rate)
        hold = int(NOTE_HOLD * n_samples)
        release = NOTE_RELEASE
        length = min(n_samples - start, hold + int(release * sample_rate))
        tone = render_note(instrument, attrs["tonic_midi"] + 7, length, sample_rate, rng, attrs["vibrato"])
        env = synth.adsr(length, sample_rate, attack=0.01, release=release, sustain_samples=hold)
        synth.place(out, tone * env, start)
        return out
    beat = 60.0 / attrs["bpm"]
    n_notes = int((n_samples / sample_rate - FIRST_ONSET_SECONDS) / beat)
    degrees = melody_degrees(rng, n_notes)
    gate = GATE[attrs["articulation"]]
    release = MELODY_RELEASE
    for i, degree in enumerate(degrees):
        start = int((FIRST_ONSET_SECONDS + i * beat) * sample_rate)
        hold = int(gate * beat * sample_rate) - int(release * sample_rate)
        length = hold + int(release * sample_rate)
        midi = degree_to_midi(attrs["tonic_midi"], attrs["mode"], degree)
        tone = render_note(instrument, midi, length, sample_rate, rng, attrs["vibrato"])
        env = synth.adsr(length, sample_rate, attack=0.005, release=release, sustain_samples=hold)
        synth.place(out, tone * env, start)
    return out


def render_tonal_soundfont(attrs: dict[str, Any], n_samples: int, sample_rate: int, rng: np.random.Generator,
                           soundfont: str) -> np.ndarray:
    """A tonal clip on a General MIDI instrument: the same notes, onsets and gates as `render_tonal`,
    played by FluidSynth, then gated by the same envelope. The gate matters: a soundfont's own
    release rings for up to a second after the note-off, which would make a staccato melody on
    strings or a trumpet sound (and measure) legato."""
    if attrs["kind"] == "note":
        release = NOTE_RELEASE
        notes = [NoteEvent(attrs["tonic_midi"] + 7, NOTE_START_SECONDS, NOTE_HOLD * n_samples / sample_rate)]
    else:
        release = MELODY_RELEASE
        beat = 60.0 / attrs["bpm"]
        degrees = melody_degrees(rng, int((n_samples / sample_rate - FIRST_ONSET_SECONDS) / beat))
        notes = [NoteEvent(degree_to_midi(attrs["tonic_midi"], attrs["mode"], degree),
                           FIRST_ONSET_SECONDS + i * beat, GATE[attrs["articulation"]] * beat - release)
                 for i, degree in enumerate(degrees)]
    mono = render_notes(soundfont, attrs["instrument"], notes, n_samples, sample_rate)
    gate = np.zeros(n_samples)
    for note in notes:
        start = int(note.start * sample_rate)
        length = min(n_samples - start, int((note.seconds + release) * sample_rate))
        if length > 0:
            env = synth.adsr(length, sample_rate, attack=0.005, release=release,
                             sustain_samples=int(note.seconds * sample_rate))
            gate[start:start + length] = np.maximum(gate[start:start + length], env)
    return mono * gate


def render_drums(attrs: dict[str, Any], n_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A 4/4 groove: kick on beats 1 and 3, snare on 2 and 4; hi-hats on every beat (sparse) or
    every sixteenth (busy), the beat-level hats accented."""
    out = np.zeros(n_samples)
    beat = 60.0 / attrs["bpm"]
    kick, snare = synth.kick(sample_rate, rng), synth.snare(sample_rate, rng)
    hat = synth.hihat(sample_rate, rng)
    per_beat = 4 if attrs["density"] == "busy" else 1
    n_beats = int((n_samples / sample_rate - FIRST_ONSET_SECONDS) / beat) + 1
    for b in range(n_beats):
        t0 = FIRST_ONSET_SECONDS + b * beat
        synth.place(out, kick if b % 2 == 0 else snare, int(t0 * sample_rate), 1.0 if b % 2 == 0 else 0.8)
        for k in range(per_beat):
            gain = 1.0 if k == 0 else 0.6
            synth.place(out, hat, int((t0 + k * beat / per_beat) * sample_rate), gain)
    return out


def render_noise(attrs: dict[str, Any], n_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    texture = attrs["texture"]
    if texture == "steady":
        sig = synth.coloured_noise(attrs["colour"], n_samples, rng, sample_rate)
    elif texture == "sweep":
        low, high = 150.0, min(9000.0, 0.4 * sample_rate)
        f_start, f_end = (low, high) if attrs["direction"] == "up" else (high, low)
        sig = synth.swept_noise(n_samples, sample_rate, rng, f_start, f_end)
    elif texture == "rain":
        sig = synth.rain(n_samples, sample_rate, rng)
    else:
        raise ValueError(f"unknown noise texture {texture!r}")
    return sig * synth.fade(n_samples, attrs["fade"])


RENDERERS = {"tonal": render_tonal, "drums": render_drums, "noise": render_noise}


def render_clip(attrs: dict[str, Any], rng: np.random.Generator, sample_rate: int = 44100,
                seconds: float = 5.0, soundfont: str | None = None) -> np.ndarray:
    """Stereo float32 [2, T]: the family's mono signal set to the drawn RMS level, then panned.
    Soundfont instruments (`SOUNDFONT_INSTRUMENTS`) are played from `soundfont` with FluidSynth.

    The level is the RMS of the mono signal (equal to the summed power of the two channels under
    constant-power panning), so loudness is read back the same wherever the clip is panned.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    n_samples = int(round(seconds * sample_rate))
    if attrs["family"] == "tonal" and attrs["instrument"] in SOUNDFONT_INSTRUMENTS:
        if soundfont is None:
            raise ValueError(f"instrument {attrs['instrument']!r} is played from a soundfont: pass soundfont=PATH")
        mono = render_tonal_soundfont(attrs, n_samples, sample_rate, rng, soundfont)
    else:
        mono = RENDERERS[attrs["family"]](attrs, n_samples, sample_rate, rng)
    rms = np.sqrt(np.mean(mono**2)) + 1e-12
    mono = mono * (10.0 ** (attrs["rms_db"] / 20.0) / rms)
    left, right = synth.pan_gains(attrs["pan_position"])
    stereo = np.stack([left * mono, right * mono])
    peak = np.abs(stereo).max()
    if peak > 0.99:  # soft-limit the rare loud transient rather than clipping it
        stereo = np.tanh(stereo / 0.99) * 0.99
    return stereo.astype(np.float32)
