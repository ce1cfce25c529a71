"""synthbench: determinism, what the renders contain, captions, the written dataset, manifests."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from prestissimo.data.manifest import ManifestError, read_manifest
from prestissimo.data.synthbench import SynthbenchSpec, make_synthbench, synthesize
from prestissimo.data.synthbench.attributes import FAMILIES, draw_attributes
from prestissimo.data.synthbench.render import clip_rng, melody_degrees, render_clip
from prestissimo.evaluation.adherence import ESTIMATORS

SPEC = SynthbenchSpec(n=40, seed=3, seconds=2.0, sample_rate=22050)


def test_clip_is_a_pure_function_of_seed_and_index():
    a1, row1 = synthesize(SPEC, 5)
    a2, row2 = synthesize(SPEC, 5)
    a3, _ = synthesize(SPEC, 6)
    assert np.array_equal(a1, a2) and row1 == row2
    assert not np.array_equal(a1, a3)
    assert a1.shape == (2, 44100) and a1.dtype == np.float32


@pytest.mark.parametrize("family", FAMILIES)
def test_render_hits_level_and_panning(family):
    for i in range(6):
        rng = clip_rng(1, i)
        attrs = draw_attributes(rng, family)
        audio = render_clip(attrs, rng, 22050, 2.0).astype(np.float64)
        assert np.abs(audio).max() <= 0.99 + 1e-6
        level = 10 * np.log10((audio**2).sum(axis=0).mean())
        assert abs(level - attrs["rms_db"]) < 3.0  # exact unless the soft limiter touched a peak
        balance = 10 * np.log10((audio[1] ** 2).sum() / (audio[0] ** 2).sum())
        expected = {"left": -1, "center": 0, "right": 1}[attrs["pan"]]
        assert np.sign(round(balance / 5.0)) == expected


def test_melody_starts_and_ends_on_the_tonic_and_visits_the_third():
    rng = np.random.default_rng(0)
    for n in range(3, 14):
        degrees = melody_degrees(rng, n)
        assert len(degrees) == n and degrees[0] == 0 and degrees[-1] == 0 and 2 in degrees
        assert all(0 <= d <= 7 for d in degrees)


def test_captions_vary_and_only_mention_real_attributes():
    captions = set()
    for i in range(60):
        _, row = synthesize(SPEC, i)
        captions.add(row["caption"])
        assert row["caption"] and row["caption"][0].isupper()
        assert "family" in row["mentioned"]
        for name in row["mentioned"]:
            assert name in row["attributes"] or name == "instrument" and row["attributes"]["family"] == "tonal"
        # every mentioned attribute with an estimator is one it can check on this clip
        for name in row["mentioned"]:
            if name in ESTIMATORS:
                assert ESTIMATORS[name].applies(row["attributes"]), (name, row["attributes"])
    assert len(captions) == 60


def test_make_writes_wavs_and_manifest_independent_of_worker_count(tmp_path):
    spec = SynthbenchSpec(n=6, seed=11, seconds=1.0, sample_rate=16000)
    m1 = make_synthbench(spec, tmp_path / "one", workers=1, progress=False)
    m2 = make_synthbench(spec, tmp_path / "two", workers=2, progress=False)
    rows1 = [json.loads(line) for line in m1.read_text().splitlines()]
    rows2 = [json.loads(line) for line in m2.read_text().splitlines()]
    assert rows1 == rows2 and len(rows1) == 6
    for row in rows1:
        a, sr = sf.read(tmp_path / "one" / row["path"])
        b, _ = sf.read(tmp_path / "two" / row["path"])
        assert sr == 16000 and a.shape == (16000, 2) and np.array_equal(a, b)
    entries = read_manifest(m1)
    assert entries[0].path == tmp_path / "one" / rows1[0]["path"]
    assert entries[0].attributes == rows1[0]["attributes"] and entries[0].mentioned == tuple(rows1[0]["mentioned"])
    assert not list((tmp_path / "one").rglob("*.tmp"))


def test_spec_rejects_bad_values():
    for kwargs in ({"n": 0}, {"n": 1, "seconds": 0.1}, {"n": 1, "sample_rate": 100}):
        with pytest.raises(ValueError):
            SynthbenchSpec(**kwargs)


def test_audiocaps_csv_manifest(tmp_path):
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "Yabc123.wav", np.zeros(800), 8000)
    (tmp_path / "test.csv").write_text("audiocap_id,youtube_id,start_time,caption\n"
                                       "1,abc123,30,A dog barks while a car passes\n")
    (entry,) = read_manifest(tmp_path / "test.csv")
    assert entry.path == tmp_path / "audio" / "Yabc123.wav"
    assert entry.caption == "A dog barks while a car passes" and entry.seconds is None


def test_plain_csv_and_jsonl_manifests(tmp_path):
    (tmp_path / "m.csv").write_text("path,caption,seconds\nclips/a.wav,rain on a roof,4.5\n")
    (entry,) = read_manifest(tmp_path / "m.csv")
    assert entry.path == tmp_path / "clips" / "a.wav" and entry.seconds == 4.5 and entry.key == "a"
    (tmp_path / "m.jsonl").write_text('{"audio": "/abs/b.flac", "text": "thunder"}\n\n')
    (entry,) = read_manifest(tmp_path / "m.jsonl")
    assert str(entry.path) == "/abs/b.flac" and entry.caption == "thunder"


@pytest.mark.parametrize("content, message", [
    ('{"path": "a.wav", "caption": "x"}\n{"path": "b.wav"\n', ":2: not valid JSON"),
    ('{"path": "a.wav"}\n', "no caption"),
    ('{"caption": "x"}\n', "no audio path"),
    ('{"path": "a.wav", "caption": "x", "seconds": "long"}\n', "seconds is not a number"),
    ("", "has no rows"),
])
def test_bad_manifests_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ManifestError, match=message):
        read_manifest(path)
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "missing.jsonl")
