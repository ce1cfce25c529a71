"""synthbench's soundfont instruments: clear errors everywhere; renders checked where FluidSynth and a GM
soundfont are installed (Debian: apt install fluidsynth timgm6mb-soundfont; pip install pyfluidsynth)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from prestissimo.data.synthbench import SynthbenchSpec, synthesize
from prestissimo.data.synthbench.attributes import INSTRUMENTS, SOUNDFONT_INSTRUMENTS, draw_attributes
from prestissimo.data.synthbench.render import clip_rng, render_clip
from prestissimo.data.synthbench.soundfont import (
    GM_PROGRAMS,
    NoteEvent,
    find_soundfont,
    fluidsynth_available,
    render_notes,
)
from prestissimo.evaluation.adherence import check_clip
from prestissimo.serve.cli import main

SOUNDFONT = find_soundfont()
needs_fluidsynth = pytest.mark.skipif(SOUNDFONT is None or not fluidsynth_available(),
                                      reason="needs pyfluidsynth, the FluidSynth library and a GM soundfont")


def test_every_soundfont_instrument_has_a_gm_program_and_a_caption():
    from prestissimo.data.synthbench.captions import INSTRUMENT_WORDS

    assert set(SOUNDFONT_INSTRUMENTS) == set(GM_PROGRAMS)
    assert set(INSTRUMENTS + SOUNDFONT_INSTRUMENTS) <= set(INSTRUMENT_WORDS)
    assert not set(INSTRUMENTS) & set(SOUNDFONT_INSTRUMENTS)


def test_without_a_soundfont_the_dataset_is_unchanged():
    """The default instrument list draws exactly what synthbench drew before soundfonts existed."""
    spec = SynthbenchSpec(n=30, seed=3, seconds=1.0, sample_rate=16000)
    assert spec.instruments == INSTRUMENTS
    for i in range(30):
        _, row = synthesize(spec, i)
        assert row["attributes"] == draw_attributes(clip_rng(3, i))
        assert row["attributes"].get("instrument", "sine") in INSTRUMENTS


def test_unknown_instrument_and_missing_soundfont_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown instruments"):
        draw_attributes(clip_rng(0, 0), "tonal", instruments=("sine", "kazoo"))
    with pytest.raises(FileNotFoundError, match="nope.sf2"):
        SynthbenchSpec(n=1, soundfont=str(tmp_path / "nope.sf2"))
    attrs = draw_attributes(clip_rng(0, 0), "tonal", instruments=("piano",))
    with pytest.raises(ValueError, match="soundfont"):
        render_clip(attrs, clip_rng(0, 0), 16000, 1.0)
    with pytest.raises(ValueError, match="unknown soundfont instrument"):
        render_notes(tmp_path / "x.sf2", "kazoo", [], 100, 16000)


def test_cli_names_a_missing_soundfont_and_auto_falls_back(tmp_path, capsys, monkeypatch):
    assert main(["synthbench", "make", "--n", "1", "--out", str(tmp_path / "a"), "--soundfont",
                 str(tmp_path / "nope.sf2"), "--quiet"]) == 2
    assert "nope.sf2" in capsys.readouterr().err
    monkeypatch.setattr("prestissimo.data.synthbench.soundfont.find_soundfont", lambda: None)
    assert main(["synthbench", "make", "--n", "2", "--seconds", "1", "--sample-rate", "16000", "--workers", "1",
                 "--out", str(tmp_path / "b"), "--soundfont", "auto", "--quiet"]) == 0
    assert "synthetic instruments only" in capsys.readouterr().err
    assert (tmp_path / "b" / "manifest.jsonl").is_file()


@needs_fluidsynth
def test_render_notes_plays_each_note_at_its_onset_and_pitch():
    sr = 16000
    notes = [NoteEvent(69, 0.1, 0.3), NoteEvent(81, 0.6, 0.3)]  # A4 then A5
    audio = render_notes(SOUNDFONT, "flute", notes, sr, sr)
    assert audio.shape == (sr,) and np.isfinite(audio).all()
    assert np.abs(audio[: int(0.09 * sr)]).max() < 1e-3  # silence before the first onset
    for note, expected_hz in zip(notes, (440.0, 880.0)):
        start = int((note.start + 0.05) * sr)
        segment = audio[start:start + 4096] * np.hanning(4096)
        spectrum = np.abs(np.fft.rfft(segment))
        peak_hz = np.argmax(spectrum) * sr / 4096
        assert abs(np.log2(peak_hz / expected_hz)) < 0.05, (peak_hz, expected_hz)
    assert np.array_equal(audio, render_notes(SOUNDFONT, "flute", notes, sr, sr))  # deterministic


@needs_fluidsynth
def test_soundfont_clips_are_deterministic_and_read_back_like_synthetic_ones():
    spec = SynthbenchSpec(n=60, seed=5, seconds=5.0, sample_rate=16000, soundfont=str(SOUNDFONT))
    checks = []
    for i in range(spec.n):
        audio, row = synthesize(spec, i)
        attrs = row["attributes"]
        if attrs["family"] != "tonal" or attrs["instrument"] not in SOUNDFONT_INSTRUMENTS:
            continue
        if not checks:
            assert np.array_equal(audio, synthesize(spec, i)[0])
        level = 10 * np.log10((audio.astype(np.float64) ** 2).sum(axis=0).mean())
        assert abs(level - attrs["rms_db"]) < 3.0
        checks.append(check_clip(audio, spec.sample_rate, attrs))
    assert len(checks) >= 8
    for name in ("family", "register"):
        results = [c[name] for c in checks if name in c]
        assert np.mean(results) >= 0.8, (name, results)


@needs_fluidsynth
def test_a_corrupt_soundfont_is_refused_before_anything_is_rendered(tmp_path):
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"RIFF not a soundfont")
    with pytest.raises(ValueError, match="not a valid .sf2"):
        SynthbenchSpec(n=1, soundfont=str(bad))


@needs_fluidsynth
def test_worker_processes_render_soundfont_clips_after_the_parent_checked_the_font(tmp_path):
    """Forked workers hung in FluidSynth's locks once the parent had loaded the font; in a child process
    with a timeout so that a regression fails instead of hanging the suite."""
    out = tmp_path / "data"
    args = ["synthbench", "make", "--n", "8", "--seed", "5", "--workers", "2", "--sample-rate", "16000",
            "--soundfont", str(SOUNDFONT), "--out", str(out), "--quiet"]
    subprocess.run([sys.executable, "-c", f"from prestissimo.serve.cli import main; raise SystemExit(main({args!r}))"],
                   check=True, timeout=120)
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 8
