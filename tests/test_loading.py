"""Checkpoint format: round trips, strict key matching, safe legacy loading, clear errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from prestissimo import TextToAudio
from prestissimo.models import ConfigError, ModelConfig, ModelLoadError
from prestissimo.models.loading import hub_online, normalize_keys
from prestissimo.models.presets import PRESETS, preset


def copy_model(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_save_and_reload_gives_bit_identical_output(tiny_model_dir, tmp_path):
    a = TextToAudio.from_pretrained(tiny_model_dir)
    out_a = a.generate(["a bright square lead", "rain"], seconds=0.5, steps=3, seed=7)
    saved = a.save_pretrained(tmp_path / "saved")
    assert (saved / "model.safetensors").is_file() and (saved / "model_config.json").is_file()
    assert (saved / "text_encoder").is_dir(), "a local text encoder travels with the model"
    b = TextToAudio.from_pretrained(saved)
    out_b = b.generate(["a bright square lead", "rain"], seconds=0.5, steps=3, seed=7)
    assert torch.equal(out_a, out_b)
    sa, sb = load_file(tiny_model_dir / "model.safetensors"), load_file(saved / "model.safetensors")
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_keys_follow_the_released_layout(tiny_model_dir):
    keys = load_file(tiny_model_dir / "model.safetensors").keys()
    for expected in ("model.model.transformer.layers.0.self_attn.to_qkv.weight",
                     "model.model.transformer.layers.1.cross_attn.to_kv.weight",
                     "model.model.transformer.layers.0.self_attn.q_norm.weight",
                     "model.model.transformer.rotary_pos_emb.inv_freq",
                     "model.model.transformer.layers.0.pre_norm.beta",
                     "model.model.timestep_features.weight", "model.model.to_cond_embed.0.weight",
                     "pretransform.model.encoder.layers.0.weight_g", "pretransform.model.decoder.layers.1.layers.1.weight_v",
                     "conditioner.conditioners.seconds_total.embedder.embedding.0.weights"):
        assert expected in keys, expected
    assert not any("prompt" in k for k in keys), "the frozen text encoder is not stored in the checkpoint"


def test_renamed_tensor_is_named_in_the_error(tiny_model_dir, tmp_path):
    d = copy_model(tiny_model_dir, tmp_path / "m")
    state = load_file(d / "model.safetensors")
    old = "model.model.transformer.layers.0.self_attn.to_qkv.weight"
    state["model.model.transformer.layers.0.self_attn.qkv.weight"] = state.pop(old)
    save_file(state, d / "model.safetensors")
    with pytest.raises(ModelLoadError) as e:
        TextToAudio.from_pretrained(d)
    assert old in str(e.value) and "missing" in str(e.value)
    assert "layers.0.self_attn.qkv.weight" in str(e.value) and "unexpected" in str(e.value)


def test_missing_tensor_and_wrong_shape_are_named(tiny_model_dir, tmp_path):
    d = copy_model(tiny_model_dir, tmp_path / "m")
    state = load_file(d / "model.safetensors")
    del state["pretransform.model.decoder.layers.0.bias"]
    state["model.model.preprocess_conv.weight"] = torch.zeros(3, 3, 1)
    save_file(state, d / "model.safetensors")
    with pytest.raises(ModelLoadError) as e:
        TextToAudio.from_pretrained(d)
    msg = str(e.value)
    assert "pretransform.model.decoder.layers.0.bias" in msg
    assert "model.model.preprocess_conv.weight checkpoint (3, 3, 1)" in msg


def test_mismatched_config_fails_with_shapes(tiny_model_dir, tmp_path):
    d = copy_model(tiny_model_dir, tmp_path / "m")
    cfg = json.loads((d / "model_config.json").read_text())
    cfg["model"]["diffusion"]["config"]["depth"] = 3
    (d / "model_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="missing keys.*layers.2"):
        TextToAudio.from_pretrained(d)


def test_corrupt_safetensors_is_reported(tiny_model_dir, tmp_path):
    d = copy_model(tiny_model_dir, tmp_path / "m")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        TextToAudio.from_pretrained(d)


def test_legacy_ckpt_loads_tensors_only(tiny_model_dir, tmp_path):
    d = copy_model(tiny_model_dir, tmp_path / "m")
    state = load_file(d / "model.safetensors")
    (d / "model.safetensors").unlink()
    torch.save({"state_dict": state}, d / "model.ckpt")
    ref = TextToAudio.from_pretrained(tiny_model_dir)
    m = TextToAudio.from_pretrained(d)
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), m.state_dict().values()))


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_ckpt_with_pickled_code_is_refused(tiny_model_dir, tmp_path):
    d = copy_model(tiny_model_dir, tmp_path / "m")
    (d / "model.safetensors").unlink()
    torch.save({"state_dict": {}, "payload": Evil()}, d / "model.ckpt")
    with pytest.raises(ModelLoadError, match="could not be read safely"):
        TextToAudio.from_pretrained(d)


def test_parametrized_weight_norm_names_are_accepted():
    state = {"pretransform.model.encoder.layers.0.parametrizations.weight.original0": torch.ones(1),
             "pretransform.model.encoder.layers.0.parametrizations.weight.original1": torch.ones(1)}
    assert set(normalize_keys(state)) == {"pretransform.model.encoder.layers.0.weight_g",
                                          "pretransform.model.encoder.layers.0.weight_v"}


def test_missing_directory_and_offline_hub_give_actionable_errors(tmp_path, monkeypatch):
    with pytest.raises(ModelLoadError, match="does not exist"):
        TextToAudio.from_pretrained(tmp_path / "nope")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not hub_online()
    with pytest.raises(ModelLoadError, match="huggingface-cli download"):
        TextToAudio.from_pretrained("stabilityai/stable-audio-open-small")


def test_missing_text_encoder_says_what_to_do(tiny_model_dir, tmp_path, monkeypatch):
    from prestissimo.models.conditioners import ConditionerUnavailable, T5Conditioner

    d = copy_model(tiny_model_dir, tmp_path / "m")
    shutil.rmtree(d / "text_encoder")
    with pytest.raises(ConditionerUnavailable, match="inside the model directory"):
        TextToAudio.from_pretrained(d)
    # A released model names t5-base; offline and not cached, loading it explains what to do.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_cache"))
    cond = T5Conditioner(output_dim=768, t5_model_name="t5-base")
    with pytest.raises(ConditionerUnavailable, match="huggingface-cli download t5-base"):
        cond.load()


def test_checkpoint_inspects_without_text_encoder(tmp_path):
    m = TextToAudio.from_preset("sao-small", device="meta")
    assert not any(k.startswith("conditioner.conditioners.prompt") for k in m.state_dict())


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_round_trip_through_json(name):
    cfg = ModelConfig.from_dict(preset(name))
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again.dit == cfg.dit and again.autoencoder == cfg.autoencoder
    assert again.conditioners == cfg.conditioners and again.sampling == cfg.sampling
    assert again.objective == cfg.objective and again.latent_length == cfg.latent_length


def test_released_configs_have_the_expected_geometry():
    small, big = ModelConfig.from_dict(preset("sao-small")), ModelConfig.from_dict(preset("sao-1.0"))
    assert small.latent_length == 256 and big.latent_length == 1024
    assert small.autoencoder.downsampling_ratio == 2048 and small.dit.dim_heads == 128 and big.dit.dim_heads == 64
    assert small.sampling.sampler == "pingpong" and small.sampling.steps == 8 and small.sampling.cfg_scale == 1.0
    assert big.sampling.sampler == "dpmpp-2m" and big.objective == "v"


@pytest.mark.parametrize("edit,match", [
    (lambda c: c["model"]["diffusion"].update(type="adp_cfg_1d"), "diffusion type"),
    (lambda c: c["model"]["diffusion"].update(diffusion_objective="x0"), "diffusion_objective"),
    (lambda c: c["model"]["diffusion"]["config"].update(input_concat_dim=4), "input_concat_dim"),
    (lambda c: c["model"]["diffusion"]["config"].update(patch_size=0), "patch_size"),
    (lambda c: c["model"]["diffusion"]["config"].update(num_heads=7), "divisible"),
    (lambda c: c["model"]["diffusion"]["config"].update(num_heads=64), "narrower than the rotary"),
    (lambda c: c["model"]["diffusion"].update(global_cond_ids=["nope"]), "nope"),
    (lambda c: c["model"]["pretransform"]["config"]["encoder"].update(type="dac"), "dac"),
    (lambda c: c.update(model_type="lm"), "model_type"),
])
def test_unsupported_configs_fail_loudly(edit, match):
    c = preset("sao-small")
    edit(c)
    with pytest.raises(ConfigError, match=match):
        ModelConfig.from_dict(c)


@pytest.mark.parametrize("name,dit_and_cond,vae,total", [
    ("sao-small", 341.1e6, 156.1e6, 497.2e6),
    ("sao-1.0", 1057.2e6, 156.1e6, 1213.3e6),
])
def test_parameter_counts_match_published_figures(name, dit_and_cond, vae, total):
    # Published: SAO Small 341M (DiT + seconds conditioner); SAO 1.0 DiT 1057M, VAE 156M, total 1.21B
    # (see README). Built on the meta device: no memory for the weights.
    counts = TextToAudio.from_preset(name, device="meta").parameter_counts()
    assert abs(counts["dit"] + counts["conditioners"] - dit_and_cond) < 0.05e6
    assert abs(counts["autoencoder"] - vae) < 0.05e6
    assert abs(counts["checkpoint_total"] - total) < 0.05e6


def test_a_model_with_a_local_bert_text_encoder_saves_to_another_directory(bert_model_dir, tmp_path):
    """Our BERT reads a transformers folder but has no save_pretrained: its frozen files are copied."""
    import torch

    from prestissimo import TextToAudio

    model = TextToAudio.from_pretrained(bert_model_dir)
    out = model.save_pretrained(tmp_path / "copy")
    assert sorted(p.name for p in (out / "enc").iterdir()) == sorted(p.name for p in (bert_model_dir / "enc").iterdir())
    again = TextToAudio.from_pretrained(out)
    torch.testing.assert_close(again.generate("rain", steps=2, seed=0), model.generate("rain", steps=2, seed=0))
