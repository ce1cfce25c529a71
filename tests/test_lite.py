"""The torch-free engine (prestissimo.runtime.lite) against the torch pipeline it must reproduce."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import bert_model_config, make_bert_model
from prestissimo import TextToAudio
from prestissimo.runtime.lite import LiteTextToAudio, LiteUnsupported, unsupported_reason
from prestissimo.runtime.lite import ops
from prestissimo.runtime.lite.engine import flow_schedule
from prestissimo.runtime.lite.noise import TorchCompatibleNormal
from prestissimo.sampling.schedules import linear_schedule, logsnr_schedule
from prestissimo.serve.cli import main

PROMPTS = ["a slow piano melody in C major", "loud noise, zxqv 雨 🌧️"]


@pytest.mark.parametrize("seed", [0, 12345, 2**40 + 7, -3])
def test_noise_is_torch_randn_of_the_same_seed_call_after_call(seed):
    g, ours = torch.Generator().manual_seed(seed), TorchCompatibleNormal(seed)
    for shape in [(2, 8, 32), (3, 7), (16,), (1, 8, 1280)]:  # multiples of 16 and not, in one stream
        np.testing.assert_allclose(ours.randn(shape), torch.randn(shape, generator=g).numpy(), atol=2e-6)


def test_noise_refuses_fewer_values_than_torch_draws_alike():
    with pytest.raises(ValueError, match="fewer than 16"):
        TorchCompatibleNormal(0).randn((3, 5))


def test_convolutions_and_activations_match_torch():
    r = np.random.default_rng(0)
    x = r.standard_normal((2, 6, 40)).astype(np.float32)
    w, b = r.standard_normal((5, 6, 7)).astype(np.float32), r.standard_normal(5).astype(np.float32)
    for padding, dilation, stride in [(3, 1, 1), (9, 3, 1), (0, 1, 2), (1, 1, 1)]:
        ref = F.conv1d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride, padding, dilation)
        np.testing.assert_allclose(ops.conv1d(x, w, b, padding, dilation, stride), ref.numpy(), atol=1e-5)
    wt = r.standard_normal((6, 5, 8)).astype(np.float32)
    ref = F.conv_transpose1d(torch.from_numpy(x), torch.from_numpy(wt), torch.from_numpy(b), 4, 2)
    np.testing.assert_allclose(ops.conv_transpose1d(x, wt, b, stride=4, padding=2), ref.numpy(), atol=1e-5)
    g = (r.standard_normal(1000) * 4).astype(np.float32)
    np.testing.assert_allclose(ops.gelu(g), F.gelu(torch.from_numpy(g)).numpy(), atol=1e-6)
    np.testing.assert_allclose(ops.gelu_tanh(g), F.gelu(torch.from_numpy(g), approximate="tanh").numpy(), atol=1e-6)


@pytest.mark.parametrize("steps", [1, 2, 8, 50])
def test_schedules_are_the_torch_schedules(steps):
    pingpong = logsnr_schedule(steps, "rf_denoiser").numpy()
    np.testing.assert_allclose(flow_schedule("pingpong", steps), pingpong, atol=1e-12)
    np.testing.assert_allclose(flow_schedule("euler", steps), linear_schedule(steps).numpy(), atol=1e-12)


@pytest.mark.parametrize("settings", [
    {},  # the model's defaults: ping-pong, 8 steps, no CFG
    {"sampler": "euler", "steps": 3, "cfg_scale": 3.0},
    {"sampler": "pingpong", "steps": 1, "seconds": 0.5},
    {"steps": 4, "eta": 0.7},  # partial re-noising: some of x's own noise kept
])
def test_lite_generates_what_the_torch_pipeline_generates(bert_model_dir, settings):
    lite = LiteTextToAudio.from_pretrained(bert_model_dir)
    tta = TextToAudio.from_pretrained(bert_model_dir)
    ours = lite.generate(PROMPTS, seed=3, **settings)
    with torch.no_grad():
        ref = tta.generate(PROMPTS, seed=3, **settings).numpy()
    assert ours.shape == ref.shape and np.isfinite(ours).all()
    assert np.abs(ref).max() > 1e-3  # a real signal, not zeros on both sides
    np.testing.assert_allclose(ours, ref, atol=1e-4 * np.abs(ref).max() + 1e-6)
    assert np.abs(ours[0] - ours[1]).max() > 1e-4  # the two prompts give different audio


@pytest.mark.parametrize("global_cond_type,qk_norm,positions",
                         [("prepend", "l2", False), ("adaLN", "none", False), ("prepend", "ln", True)])
def test_lite_matches_torch_across_dit_variants(tmp_path, global_cond_type, qk_norm, positions):
    model_dir = make_bert_model(tmp_path, bert_model_config(global_cond_type, qk_norm, positions), seed=1)
    ours = LiteTextToAudio.from_pretrained(model_dir).generate(PROMPTS[:1], seed=0, steps=2)
    with torch.no_grad():
        ref = TextToAudio.from_pretrained(model_dir).generate(PROMPTS[:1], seed=0, steps=2).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-4 * np.abs(ref).max() + 1e-6)


def test_lite_refuses_what_it_cannot_run_and_says_why(tiny_model_dir, tiny_v_model_dir, bert_model_dir):
    with pytest.raises(LiteUnsupported, match="text encoder"):  # a T5 encoder
        LiteTextToAudio.from_pretrained(tiny_model_dir)
    with pytest.raises(LiteUnsupported, match="objective"):
        LiteTextToAudio.from_pretrained(tiny_v_model_dir)
    lite = LiteTextToAudio.from_pretrained(bert_model_dir)
    assert unsupported_reason(lite.config, bert_model_dir) is None
    with pytest.raises(LiteUnsupported, match="dpmpp-2m"):
        lite.generate("rain", sampler="dpmpp-2m")
    with pytest.raises(ValueError, match="at most"):  # the same request checks as the torch pipeline
        lite.generate("rain", seconds=100.0)
    with pytest.raises(ValueError, match="empty"):
        lite.generate("  ")


def test_a_number_conditioner_nothing_feeds_is_refused_as_the_torch_pipeline_refuses_it(tmp_path):
    config = bert_model_config()
    config["model"]["conditioning"]["configs"].append({"id": "bpm", "type": "number",
                                                       "config": {"min_val": 0, "max_val": 300}})
    model_dir = make_bert_model(tmp_path, config)
    with pytest.raises(ValueError, match="don't know what to feed the number conditioner 'bpm'"):
        LiteTextToAudio.from_pretrained(model_dir)
    with pytest.raises(ValueError, match="don't know what to feed the number conditioner 'bpm'"):
        TextToAudio.from_pretrained(model_dir).generate("rain", steps=1)


def test_cli_generate_takes_the_torch_free_engine_without_importing_torch(bert_model_dir, tmp_path):
    out = tmp_path / "a.wav"
    code = (f"import sys; from prestissimo.serve.cli import main; "
            f"rc = main(['generate', 'a slow piano melody', '--model', {str(bert_model_dir)!r}, '-o', {str(out)!r}, "
            f"'--seed', '0', '--quiet']); print(json.dumps([rc, 'torch' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    rc, imported_torch = json.loads(done.stdout.strip().splitlines()[-1])
    assert rc == 0 and not imported_torch and out.is_file()
    # the torch engine writes the same clip for the same seed (16-bit PCM: equal within a few LSB)
    torch_out = tmp_path / "b.wav"
    assert main(["generate", "a slow piano melody", "--model", str(bert_model_dir), "-o", str(torch_out),
                 "--seed", "0", "--quiet", "--engine", "torch"]) == 0
    import soundfile as sf

    a, b = sf.read(out, dtype="int16")[0], sf.read(torch_out, dtype="int16")[0]
    assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_cli_engine_choice_falls_back_or_refuses(bert_model_dir, tiny_model_dir, tmp_path, capsys):
    # auto with a torch-only option or model: the torch engine runs
    assert main(["generate", "rain", "--model", str(bert_model_dir), "-o", str(tmp_path / "a.wav"), "--quiet",
                 "--precision", "int8"]) == 0
    assert main(["generate", "rain", "--model", str(tiny_model_dir), "-o", str(tmp_path / "b.wav"), "--quiet"]) == 0
    # asking for numpy where it cannot run is a one-line error
    assert main(["generate", "rain", "--model", str(bert_model_dir), "-o", str(tmp_path / "c.wav"),
                 "--engine", "numpy", "--precision", "int8"]) == 2
    assert "--precision int8" in capsys.readouterr().err
    assert main(["generate", "rain", "--model", str(tiny_model_dir), "-o", str(tmp_path / "d.wav"),
                 "--engine", "numpy"]) == 2
    assert "text encoder" in capsys.readouterr().err
    assert not (tmp_path / "c.wav").exists() and not (tmp_path / "d.wav").exists()


def test_a_checkpoint_that_does_not_fit_its_config_is_named_not_half_run(bert_model_dir, tmp_path, capsys):
    import shutil

    from safetensors.numpy import load_file, save_file

    from prestissimo.models.loading import ModelLoadError

    def broken(name, edit):
        d = tmp_path / name
        shutil.copytree(bert_model_dir, d)
        state = load_file(d / "model.safetensors")
        edit(state)
        save_file(state, d / "model.safetensors")
        return d

    renamed = "model.model.transformer.layers.0.self_attn.to_qkv.weight"
    d = broken("renamed", lambda s: s.update({"model.model.qkv.weight": s.pop(renamed)}))
    with pytest.raises(ModelLoadError, match="missing key.*layers.0.self_attn.to_qkv.weight"):
        LiteTextToAudio.from_pretrained(d)
    extra = "model.model.transformer.layers.7.ff_norm.gamma"  # a layer the config does not have
    d = broken("extra", lambda s: s.update({extra: s["model.model.transformer.layers.0.ff_norm.gamma"]}))
    with pytest.raises(ModelLoadError, match=f"unexpected keys \\(1\\): {extra}"):
        LiteTextToAudio.from_pretrained(d)
    conv = "pretransform.model.decoder.layers.0.weight_v"
    d = broken("shape", lambda s: s.update({conv: s[conv][:, :3]}))
    with pytest.raises(ModelLoadError, match="wrong shape"):
        LiteTextToAudio.from_pretrained(d)
    # the CLI's auto engine lets the torch loader list every mismatch, as for any model
    assert main(["generate", "rain", "--model", str(d), "-o", str(tmp_path / "a.wav")]) == 2
    assert f"{conv} checkpoint" in capsys.readouterr().err and not (tmp_path / "a.wav").exists()
