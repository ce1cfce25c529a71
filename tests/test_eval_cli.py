"""`prestissimo synthbench ...` and `prestissimo eval` end to end on tiny data and a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prestissimo.serve.cli import main


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthbench")
    assert main(["synthbench", "make", "--n", "5", "--out", str(out), "--seed", "1", "--seconds", "1",
                 "--sample-rate", "16000", "--workers", "1", "--quiet"]) == 0
    return out


def test_synthbench_make_prints_the_manifest(bench_dir):
    rows = [json.loads(line) for line in (bench_dir / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all((bench_dir / r["path"]).is_file() for r in rows)


def test_synthbench_calibrate_prints_a_table_and_json(tmp_path, capsys):
    assert main(["synthbench", "calibrate", "--n", "4", "--seed", "2", "--json", str(tmp_path / "c.json"),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| family | 4 |" in out and "in the adherence score" in out
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["attributes"]["family"]["total"] == 4 and data["spec"]["n"] == 4


def test_eval_generates_scores_and_rescores_the_same_files(tiny_model_dir, bench_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["eval", "--model", str(tiny_model_dir), "--prompts", str(bench_dir / "manifest.jsonl"),
                 "--seeds", "2", "--steps", "2", "--batch-size", "3", "--out", str(out), "--grid", "4",
                 "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "Fréchet distance (logmel)" in table and "prompt adherence" in table
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_prompts"] == 5 and metrics["seeds_per_prompt"] == 2
    assert metrics["network_evaluations_per_clip"] == 2 and metrics["fd"] > 0
    assert 0.0 <= metrics["adherence"] <= 1.0 and 0.0 <= metrics["adherence_chance"] <= 1.0
    rows = [json.loads(line) for line in open(bench_dir / "manifest.jsonl")]
    assert metrics["adherence_attribute_clips"].keys() == metrics["adherence_attributes"].keys()
    assert metrics["adherence_attribute_clips"]["family"] == sum("family" in r["mentioned"] for r in rows)
    assert metrics["diversity_conditional"] > 0 and metrics["diversity_unconditional"] > 0
    rhythmic = sum("tempo" in json.loads(line)["attributes"] for line in open(bench_dir / "manifest.jsonl"))
    assert rhythmic and metrics["beat_regularity_clips"] == rhythmic and -1.0 <= metrics["beat_regularity"] <= 1.0
    assert (out / "spectrograms.png").stat().st_size > 10_000
    assert len(list((out / "audio").glob("*_s1.wav"))) == 5

    again = tmp_path / "again"
    assert main(["eval", "--audio", str(out / "audio"), "--prompts", str(bench_dir / "manifest.jsonl"),
                 "--seeds", "2", "--out", str(again), "--grid", "0", "--quiet"]) == 0
    rescored = json.loads((again / "metrics.json").read_text())
    for key in ("fd", "mmd", "adherence", "diversity_conditional"):
        assert rescored[key] == pytest.approx(metrics[key])


def test_eval_samples_with_the_asked_eta_and_reports_it(tiny_model_dir, bench_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["eval", "--model", str(tiny_model_dir), "--prompts", str(bench_dir / "manifest.jsonl"),
                 "--steps", "2", "--eta", "0.5", "--out", str(out), "--grid", "0", "--quiet"]) == 0
    assert "pingpong (eta 0.5) / 2 / 1" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["eta"] == 0.5


def test_eval_leaves_out_a_corrupt_reference_and_says_so(bench_dir, tmp_path, caplog):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(bench_dir, data)
    first = json.loads((data / "manifest.jsonl").read_text().splitlines()[0])
    (data / first["path"]).write_bytes(b"not audio at all")
    audio = tmp_path / "gen"
    audio.mkdir()
    import soundfile as sf

    for row in (json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()):
        stem = row["path"].split("/")[-1][:-4]
        sf.write(audio / f"{stem}.wav", np.random.default_rng(0).standard_normal((8000, 2)) * 0.1, 8000)
    assert main(["eval", "--audio", str(audio), "--prompts", str(data / "manifest.jsonl"), "--out",
                 str(tmp_path / "o"), "--grid", "0", "--quiet"]) == 0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["n_reference"] == 4 and metrics["fd"] > 0
    assert "1 of 5 reference files missing or unreadable" in caplog.text


@pytest.mark.parametrize("args, message", [
    (["eval", "--prompts", "missing.jsonl", "--audio", "."], "manifest not found"),
    (["eval", "--prompts", "{manifest}", "--audio", "{empty}"], "no generated audio"),
    (["eval", "--prompts", "{manifest}", "--audio", "{empty}", "--embedding", "vggish"], "unknown embedding backend"),
    (["eval", "--prompts", "{manifest}", "--audio", "{empty}", "--clap", "{empty}/nope"], "CLAP model directory"),
    (["eval", "--prompts", "{manifest}", "--audio", "{empty}", "--limit", "0"], "--limit must be >= 1"),
    (["synthbench", "make", "--n", "0", "--out", "{empty}"], "--n must be >= 1"),
    (["synthbench", "make", "--n", "2", "--out", "{empty}", "--seconds", "0"], "seconds must be within"),
])
def test_bad_eval_input_exits_2_without_a_traceback(bench_dir, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    args = [a.format(manifest=bench_dir / "manifest.jsonl", empty=tmp_path / "empty") for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prestissimo: error:") and message in err.splitlines()[0] and "Traceback" not in err, err
