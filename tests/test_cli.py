"""The prestissimo command end to end: valid WAV files out, one-line errors for bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from prestissimo.serve.cli import main


def run(args, capsys):
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse rejects malformed arguments this way
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_writes_a_wav_of_the_asked_length(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "dog.wav"
    code, stdout, _ = run(["generate", "a dog barking", "-o", out, "--model", tiny_model_dir, "--seconds", 0.75,
                           "--seed", 1, "--quiet"], capsys)
    assert code == 0 and str(out) in stdout
    info = sf.info(str(out))
    assert info.samplerate == 8000 and info.channels == 2 and info.frames == 6000 and info.subtype == "PCM_16"
    data, _ = sf.read(str(out))
    assert np.abs(data).max() <= 1.0 and np.abs(data).max() > 0


def test_generate_is_reproducible_with_a_seed(tiny_model_dir, tmp_path, capsys):
    paths = [tmp_path / "a.wav", tmp_path / "b.wav"]
    for p in paths:
        assert run(["generate", "rain on a roof", "-o", p, "--model", tiny_model_dir, "--seed", 5, "--steps", 2,
                    "--quiet"], capsys)[0] == 0
    assert np.array_equal(sf.read(str(paths[0]))[0], sf.read(str(paths[1]))[0])


def test_batch_generation_from_a_prompts_file(tiny_model_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a bell\n\n  pink noise fading out \nfast drums, 140 BPM\n")
    out = tmp_path / "clips"
    code, stdout, _ = run(["generate", "--prompts-file", prompts, "-o", out, "--model", tiny_model_dir,
                           "--seconds", 0.25, "--batch-size", 2, "--steps", 2, "--seed", 0, "--quiet"], capsys)
    assert code == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["000_a-bell.wav", "001_pink-noise-fading-out.wav", "002_fast-drums-140-bpm.wav"]
    assert all(sf.info(str(out / f)).frames == 2000 for f in files)


@pytest.mark.parametrize("args,message", [
    (["generate", "", "--model", "{model}"], "prompt is empty"),
    (["generate", "x", "--model", "{model}", "--seconds", "0"], "seconds must be > 0"),
    (["generate", "x", "--model", "{model}", "--seconds", "-2"], "seconds must be > 0"),
    (["generate", "x", "--model", "{model}", "--seconds", "60"], "at most 1.02"),
    (["generate", "x", "--model", "{model}", "--sampler", "heun"], "unknown sampler 'heun'"),
    (["generate", "x", "--model", "{model}", "--steps", "0"], "steps must be an integer >= 1"),
    (["generate", "x", "--model", "{model}", "--cfg-scale", "-3"], "cfg scale"),
    (["generate", "x", "--model", "{model}", "--eta", "1.5"], "eta must be a number in [0, 1]"),
    (["generate", "x", "--model", "{model}", "--sampler", "euler", "--eta", "0.5"], "eta applies to the pingpong"),
    (["generate", "x", "--model", "{model}", "-o", "out.mp3"], "must be a .wav"),
    (["generate", "x", "--model", "{tmp}/missing"], "does not exist"),
    (["generate", "x", "--model", "{model}", "--steps", "many"], "invalid int value"),
    (["generate", "x", "--model", "{model}", "--precision", "fp8"], "precision must be one of"),
    (["generate", "x", "--model", "{model}", "--decode-chunk", "0"], "decode chunk"),
    (["generate", "--model", "{model}"], "no prompt given"),
    (["generate", "--prompts-file", "{tmp}/none.txt", "--model", "{model}"], "does not exist"),
    (["info", "--model", "{tmp}/missing"], "does not exist"),
    (["create-model", "{model}"], "not empty"),
    (["create-model", "{tmp}/new", "--preset", "huge"], "unknown preset"),
    (["export", "{model}", "--out", "{model}"], "not empty"),
    (["export", "{model}", "--out", "{tmp}/x", "--storage", "int4"], "storage must be one of"),
    (["export", "{model}", "--out", "{tmp}/x", "--card", "{tmp}/nope.md"], "does not exist"),
    (["export", "{model}", "--out", "{tmp}/x", "--max-mb", "0.5"], "over the 0.5 MB budget"),
    (["export", "{model}", "--out", "{tmp}/x", "--max-mb", "-1"], "budget must be > 0 MB"),
])
def test_bad_input_exits_2_with_one_line(tiny_model_dir, tmp_path, capsys, args, message):
    code, _, err = run([a.format(model=tiny_model_dir, tmp=tmp_path) for a in args], capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_export_stores_fp16_with_a_card_and_generates_like_the_original(tiny_model_dir, tmp_path, capsys):
    from prestissimo import TextToAudio

    card = tmp_path / "card.md"
    card.write_text("# tiny\nrandom weights\n")
    out = tmp_path / "release"
    code, stdout, _ = run(["export", tiny_model_dir, "--out", out, "--card", card, "--max-mb", 40], capsys)
    assert code == 0 and "MB" in stdout and (out / "README.md").read_text() == card.read_text()
    umask = os.umask(0)
    os.umask(umask)
    assert all(p.stat().st_mode & 0o666 == 0o666 & ~umask for p in out.iterdir())  # as a plain open() makes them
    assert (out / "model.safetensors").stat().st_size < 0.6 * (tiny_model_dir / "model.safetensors").stat().st_size
    original, exported = TextToAudio.from_pretrained(tiny_model_dir), TextToAudio.from_pretrained(out)
    assert exported.dtype == original.dtype  # stored fp16, loaded back as fp32
    a, b = (m.generate("a bell", seconds=0.5, steps=2, seed=0) for m in (original, exported))
    assert (a - b).abs().max() < 1e-2 * a.abs().max()
    # a refused export leaves the previous one as it was
    assert run(["export", tiny_model_dir, "--out", out, "--overwrite", "--max-mb", 0.5], capsys)[0] == 2
    assert (out / "README.md").is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".release")]


def test_export_can_set_the_default_sampling(tiny_model_dir, tmp_path, capsys):
    from prestissimo import TextToAudio

    out = tmp_path / "release"
    code, _, _ = run(["export", tiny_model_dir, "--out", out, "--sampler", "euler", "--steps", 3, "--cfg-scale", 2.5],
                     capsys)
    assert code == 0
    s = TextToAudio.from_pretrained(out).config.sampling
    assert (s.sampler, s.steps, s.cfg_scale) == ("euler", 3, 2.5)
    code, _, err = run(["export", tiny_model_dir, "--out", tmp_path / "bad", "--sampler", "ddim"], capsys)
    assert code == 2 and "unknown sampler 'ddim'" in err and not (tmp_path / "bad").exists()
    code, _, err = run(["export", tiny_model_dir, "--out", tmp_path / "bad", "--steps", 0], capsys)
    assert code == 2 and "steps must be an integer >= 1" in err and not list(tmp_path.glob("*bad*"))
    code, _, err = run(["export", tiny_model_dir, "--out", tmp_path / "bad", "--sampler", "euler", "--eta", 0.5],
                       capsys)
    assert code == 2 and "eta applies to the pingpong sampler only" in err and not list(tmp_path.glob("*bad*"))


def test_export_saves_a_pingpong_eta_that_generation_then_uses(tiny_model_dir, tmp_path, capsys):
    from prestissimo import TextToAudio

    out = tmp_path / "release"
    assert run(["export", tiny_model_dir, "--out", out, "--eta", 0.9, "--storage", "fp32"], capsys)[0] == 0
    exported, original = TextToAudio.from_pretrained(out), TextToAudio.from_pretrained(tiny_model_dir)
    assert exported.config.sampling.eta == 0.9 and original.config.sampling.eta == 1.0
    assert exported.request("x").eta == 0.9 and exported.request("x", sampler="euler").eta == 1.0
    kw = {"seconds": 0.5, "steps": 4, "seed": 0}
    assert torch.equal(exported.generate("a bell", **kw), original.generate("a bell", eta=0.9, **kw))
    assert not torch.allclose(exported.generate("a bell", **kw), original.generate("a bell", **kw))
    code, stdout, _ = run(["info", "--model", out], capsys)
    assert code == 0 and "eta 0.9" in stdout


def test_the_shipped_model_is_the_default(tiny_model_dir, tmp_path, capsys, monkeypatch):
    import prestissimo.models.loading as loading
    from prestissimo import TextToAudio
    from prestissimo.models.loading import ModelLoadError

    monkeypatch.setattr(loading, "default_model_dir", lambda: None)
    with pytest.raises(ModelLoadError, match="no default model"):
        TextToAudio.from_pretrained()
    assert "no default model" in run(["generate", "a bell", "-o", tmp_path / "a.wav"], capsys)[2]
    monkeypatch.setattr(loading, "default_model_dir", lambda: tiny_model_dir)
    assert TextToAudio.from_pretrained().model_dir == tiny_model_dir
    code, stdout, _ = run(["generate", "a bell", "-o", tmp_path / "a.wav", "--seconds", 0.5, "--quiet"], capsys)
    assert code == 0 and sf.info(str(tmp_path / "a.wav")).frames == 4000


def test_info_reports_released_parameter_counts(capsys):
    code, out, _ = run(["info", "--model", "sao-small", "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["objective"] == "rf_denoiser" and info["latent"].startswith("64 x 256")
    p = info["parameters"]
    assert round((p["dit"] + p["conditioners"]) / 1e6) == 341 and round(p["autoencoder"] / 1e6) == 156
    code, out, _ = run(["info", "--model", "sao-1.0", "--json"], capsys)
    p = json.loads(out)["parameters"]
    assert round((p["dit"] + p["conditioners"]) / 1e6) == 1057 and round(p["checkpoint_total"] / 1e9, 2) == 1.21


def test_info_on_a_model_directory(tiny_model_dir, capsys):
    code, out, _ = run(["info", "--model", tiny_model_dir], capsys)
    assert code == 0 and "pingpong, 8 steps" in out and "checkpoint_total" in out


def test_console_script_end_to_end(tmp_path):
    exe = shutil.which("prestissimo")
    cmd = [exe] if exe else [sys.executable, "-m", "prestissimo.serve.cli"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    model = tmp_path / "model"
    subprocess.run(cmd + ["create-model", str(model), "--preset", "tiny-1.0"], check=True, env=env,
                   capture_output=True, timeout=300)
    out = tmp_path / "x.wav"
    r = subprocess.run(cmd + ["generate", "a short bell", "-o", str(out), "--model", str(model), "--seconds", "0.5",
                              "--steps", "4"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sf.info(str(out)).frames == 4000
    bad = subprocess.run(cmd + ["generate", "   ", "--model", str(model)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip() == "prestissimo: error: prompt is empty"


def test_export_takes_a_decoder_fine_tuned_behind_the_models_encoder_and_refuses_another_encoder(
        tiny_model_dir, tmp_path, capsys):
    import copy

    from prestissimo import TextToAudio
    from prestissimo.models.autoencoder_io import save_autoencoder

    model = TextToAudio.from_pretrained(tiny_model_dir)
    ae = copy.deepcopy(model.pretransform.model)
    with torch.no_grad():
        for p in ae.decoder.parameters():
            p.add_(0.01)
    save_autoencoder(ae, model.sample_rate, model.config.sample_size, tmp_path / "tuned")
    out = tmp_path / "release"
    code, _, err = run(["export", tiny_model_dir, "--out", out, "--storage", "fp32", "--decoder", tmp_path / "tuned"],
                       capsys)
    assert code == 0, err
    exported = TextToAudio.from_pretrained(out).pretransform.model.state_dict()
    assert all(torch.equal(exported[k], v) for k, v in ae.state_dict().items())
    latents = model.generate_latents(["a bell"], seconds=0.5, steps=2, seed=0)
    assert not torch.equal(model.decode(latents), TextToAudio.from_pretrained(out).decode(latents))

    with torch.no_grad():
        next(ae.encoder.parameters()).add_(0.01)
    save_autoencoder(ae, model.sample_rate, model.config.sample_size, tmp_path / "other")
    code, _, err = run(["export", tiny_model_dir, "--out", tmp_path / "x", "--decoder", tmp_path / "other"], capsys)
    assert code == 2 and "another encoder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()

    import dataclasses

    from prestissimo.models.autoencoder import OobleckAutoencoder
    narrower = OobleckAutoencoder(dataclasses.replace(ae.cfg, latent_dim=ae.cfg.latent_dim // 2))
    save_autoencoder(narrower, model.sample_rate, model.config.sample_size, tmp_path / "narrower")
    code, _, err = run(["export", tiny_model_dir, "--out", tmp_path / "x", "--decoder", tmp_path / "narrower"], capsys)
    assert code == 2 and "latent_dim differ" in err and len(err.strip().splitlines()) == 1
