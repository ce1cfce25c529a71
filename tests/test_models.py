"""Module-level invariants of the networks and the generation path."""

from __future__ import annotations

import pytest
import torch

from prestissimo.models.factory import randomize_
from prestissimo import TextToAudio
from prestissimo.models import AutoencoderConfig, DiffusionTransformer, ModelConfig, OobleckAutoencoder
from prestissimo.models.conditioners import NumberConditioner
from prestissimo.models.config import ConfigError
from prestissimo.models.presets import preset
from prestissimo.models.transformer import RotaryEmbedding, ScaledSinusoidalEmbedding, apply_rotary


def tiny_dit(name="tiny"):
    return randomize_(DiffusionTransformer(ModelConfig.from_dict(preset(name)).dit)).eval()


def test_rotary_rotates_only_the_leading_channels_and_keeps_norms():
    freqs = RotaryEmbedding(8)(5)
    x = torch.randn(2, 3, 5, 16)
    y = apply_rotary(x, freqs)
    assert torch.equal(y[..., 8:], x[..., 8:])
    assert torch.allclose(y[..., :8].norm(dim=-1), x[..., :8].norm(dim=-1), atol=1e-5)
    assert torch.allclose(y[:, :, 0], x[:, :, 0])  # position 0 is not rotated


@pytest.mark.parametrize("name", ["tiny", "tiny-1.0"])
def test_cached_context_kv_gives_the_same_output(name):
    dit = tiny_dit(name)
    cfg = dit.cfg
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, cfg.io_channels, 12, generator=g), torch.rand(2, generator=g)
    tokens = torch.randn(2, 5, cfg.cond_token_dim, generator=g)
    glob = torch.randn(2, cfg.global_cond_dim, generator=g)
    with torch.no_grad():
        plain = dit(x, t, cross_attn_cond=tokens, global_cond=glob)
        ctx = dit.embed_context(tokens)
        cached = dit(x, t, global_cond=glob, context_kv=dit.context_kv(ctx))
    assert torch.allclose(plain, cached, atol=1e-6)


def test_dit_is_length_agnostic_and_batch_independent():
    dit = tiny_dit()
    cfg = dit.cfg
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(3, cfg.io_channels, 9, generator=g), torch.rand(3, generator=g)
    tokens, glob = torch.randn(3, 4, cfg.cond_token_dim, generator=g), torch.randn(3, cfg.global_cond_dim, generator=g)
    with torch.no_grad():
        full = dit(x, t, cross_attn_cond=tokens, global_cond=glob)
        one = dit(x[1:2], t[1:2], cross_attn_cond=tokens[1:2], global_cond=glob[1:2])
        hidden = dit(x, t, cross_attn_cond=tokens, global_cond=glob, exit_layer_ix=0)
    assert full.shape == x.shape and torch.allclose(full[1:2], one, atol=1e-5)
    assert hidden.shape == (3, 9 + 1, cfg.embed_dim)  # prepended global token included


def test_adaln_global_conditioning_variant_runs():
    c = preset("tiny")
    c["model"]["diffusion"]["config"]["global_cond_type"] = "adaLN"
    dit = randomize_(DiffusionTransformer(ModelConfig.from_dict(c).dit))
    assert any("to_scale_shift_gate" in k for k in dit.state_dict())
    out = dit(torch.randn(1, 8, 6), torch.rand(1), cross_attn_cond=torch.randn(1, 3, 32), global_cond=torch.randn(1, 32))
    assert out.shape == (1, 8, 6) and torch.isfinite(out).all()


def test_a_text_conditioner_in_global_ids_gives_its_masked_mean(pooled_model_dir, tmp_path):
    tta = TextToAudio.from_pretrained(pooled_model_dir)
    prompts = ["a dog", "rain on a tin roof at night"]
    tokens, glob = tta.conditioning_tokens(prompts, 1.0)
    out = tta.conditioner(tta.conditioning_inputs(prompts, 1.0), tta.device)
    emb, mask = out["prompt"]
    d = tta.config.cond_dim
    for i in range(2):
        expected = emb[i, mask[i]].mean(0)  # the padding does not dilute the mean
        assert torch.allclose(glob[i, :d], expected, atol=1e-6)
    assert torch.allclose(glob[:, d:], out["seconds_total"][0][:, 0])
    cond = tta.embed_conditioning(tokens, glob)
    assert cond.global_prompt_mask.tolist() == [True] * d + [False] * d
    uncond = cond.without_prompt()
    assert uncond[:, :d].abs().sum() == 0 and torch.equal(uncond[:, d:], glob[:, d:])
    # and the model still loads, generates and round-trips its config
    audio = tta.generate(prompts[0], seconds=0.5, steps=2, seed=0)
    assert torch.isfinite(audio).all()
    tta.save_pretrained(tmp_path / "again")
    assert TextToAudio.from_pretrained(tmp_path / "again").config.global_cond_ids == ["prompt", "seconds_total"]


def test_patched_dit_folds_frames_channel_major_and_round_trips_its_config():
    c = preset("tiny")
    c["model"]["diffusion"]["config"]["patch_size"] = 4
    cfg = ModelConfig.from_dict(c)
    assert cfg.dit.patch_size == 4 and cfg.dit.to_dict()["patch_size"] == 4
    dit = randomize_(DiffusionTransformer(cfg.dit)).eval()
    torch.nn.init.zeros_(dit.preprocess_conv.weight)  # so that the transformer's input is x itself
    seen = {}
    dit.transformer.register_forward_hook(lambda module, args, output: seen.update(tokens=args[0]))
    x = torch.randn(2, 8, 12)
    with torch.no_grad():
        out = dit(x, torch.rand(2), cross_attn_cond=torch.randn(2, 3, 32), global_cond=torch.randn(2, 32))
    tokens = seen["tokens"]  # [B, 12 / 4, 8 * 4], stable-audio-tools' "b (t p) c -> b t (c p)"
    assert tokens.shape == (2, 3, 32)
    assert torch.equal(tokens[1, 2, 5 * 4 + 1], x[1, 5, 2 * 4 + 1])  # channel 5, frame 9
    assert out.shape == x.shape and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="patch_size"):
        dit(torch.randn(1, 8, 10), torch.rand(1), cross_attn_cond=torch.randn(1, 3, 32), global_cond=torch.randn(1, 32))
    c["sample_size"] = 8 * 1026  # 1026 latent frames
    with pytest.raises(ConfigError, match="patch_size"):
        ModelConfig.from_dict(c)


def test_sinusoidal_positions_are_stable_audio_tools_features_added_to_every_token():
    emb = ScaledSinusoidalEmbedding(8)
    table = emb(5)
    inv_freq = 10000.0 ** -(torch.arange(4) / 4)
    assert torch.allclose(table[3], torch.cat([torch.sin(3 * inv_freq), torch.cos(3 * inv_freq)]) * 8**-0.5)
    assert list(emb.state_dict()) == ["scale"]  # the frequencies are not stored, as in the reference

    c = preset("tiny")
    c["model"]["diffusion"]["config"]["use_sinusoidal_emb"] = True
    cfg = ModelConfig.from_dict(c)
    assert cfg.dit.sinusoidal_pos_emb and cfg.dit.to_dict()["use_sinusoidal_emb"] is True
    with_pos = randomize_(DiffusionTransformer(cfg.dit)).eval()
    assert "transformer.pos_emb.scale" in with_pos.state_dict()
    without = DiffusionTransformer(ModelConfig.from_dict(preset("tiny")).dit).eval()
    without.load_state_dict({k: v for k, v in with_pos.state_dict().items() if not k.startswith("transformer.pos_emb.")})
    args = (torch.randn(2, 8, 12), torch.rand(2))
    kw = {"cross_attn_cond": torch.randn(2, 3, 32), "global_cond": torch.randn(2, 32)}
    with torch.no_grad():
        assert not torch.allclose(with_pos(*args, **kw), without(*args, **kw), atol=1e-5)
        with_pos.transformer.pos_emb.scale.zero_()  # zero scale: exactly the rotary-only model
        torch.testing.assert_close(with_pos(*args, **kw), without(*args, **kw))


def test_diffusers_conversion_refuses_a_position_embedding_it_has_no_place_for():
    from prestissimo.runtime.reference import dit_to_diffusers

    with pytest.raises(ValueError, match="use_sinusoidal_emb"):
        dit_to_diffusers({"transformer.pos_emb.scale": torch.ones(1)})


def test_autoencoder_shapes_and_deterministic_mean():
    cfg = AutoencoderConfig(audio_channels=2, channels=8, c_mults=[1, 2], strides=[2, 4], latent_dim=4)
    ae = randomize_(OobleckAutoencoder(cfg)).eval()
    audio = torch.randn(2, 2, 64)
    with torch.no_grad():
        z = ae.encode(audio)
        assert z.shape == (2, 4, 8) and torch.equal(z, ae.encode(audio))
        z1 = ae.encode(audio, sample=True, generator=torch.Generator().manual_seed(0))
        assert not torch.equal(z, z1)
        assert ae.decode(z).shape == (2, 2, 64)


def test_weight_norm_recomputes_the_effective_weight():
    cfg = AutoencoderConfig(audio_channels=1, channels=4, c_mults=[1], strides=[2], latent_dim=2)
    conv = OobleckAutoencoder(cfg).encoder.layers[0]
    w = conv.normalized_weight()
    assert torch.allclose(w.flatten(1).norm(dim=1), conv.weight_g.flatten())
    with torch.no_grad():
        conv.weight_g.mul_(2)
    assert torch.allclose(conv.normalized_weight(), 2 * w)


def test_number_conditioner_clamps_and_normalises():
    cond = NumberConditioner(16, min_val=0, max_val=10)
    emb, mask = cond([-5.0, 0.0, 10.0, 99.0], "cpu")
    assert emb.shape == (4, 1, 16) and mask.all()
    assert torch.equal(emb[0], emb[1]) and torch.equal(emb[2], emb[3])


def test_text_conditioner_zeroes_padding(tiny_model_dir):
    tta = TextToAudio.from_pretrained(tiny_model_dir)
    emb, mask = tta.conditioner.conditioners["prompt"](["hi", "a much longer prompt"], "cpu")
    assert emb.shape[1] == 16 and mask[0].sum() < mask[1].sum()
    assert torch.all(emb[~mask] == 0) and emb[mask].abs().sum() > 0


def test_generate_is_deterministic_per_seed_and_respects_seconds(tiny_model_dir):
    tta = TextToAudio.from_pretrained(tiny_model_dir)
    a = tta.generate("a slow organ chord", seconds=0.5, seed=3)
    b = tta.generate("a slow organ chord", seconds=0.5, seed=3)
    c = tta.generate("a slow organ chord", seconds=0.5, seed=4)
    assert a.shape == (1, 2, 4000) and torch.equal(a, b) and not torch.equal(a, c)


def test_prompts_change_the_output(tiny_model_dir):
    tta = TextToAudio.from_pretrained(tiny_model_dir)
    randomize_(tta.model)  # a fresh DiT zero-initialises its cross-attention outputs, as the reference does
    a = tta.generate("birdsong", seconds=0.25, seed=0, steps=2)
    b = tta.generate("thunder", seconds=0.25, seed=0, steps=2)
    assert not torch.allclose(a, b)


def test_free_form_prompts_with_unknown_words_give_sound(tiny_model_dir):
    tta = TextToAudio.from_pretrained(tiny_model_dir)
    randomize_(tta.model)
    prompts = ["rain on a tin roof at night", "zxqvbl blorfing gnarp", "雨の音 🌧️ ça gronde", "!!!"]
    out = tta.generate(prompts, seconds=0.25, steps=2, seed=0)
    assert out.shape == (4, 2, 2000) and torch.isfinite(out).all() and out.abs().amax(dim=(1, 2)).gt(0).all()
    # past the text encoder's token limit a prompt is truncated, not refused: only its start counts
    long = " ".join(["wind"] * 600)
    a = tta.generate(long + " and thunder", seconds=0.25, steps=2, seed=0)
    b = tta.generate(long + " and birdsong", seconds=0.25, steps=2, seed=0)
    assert torch.equal(a, b)


def test_cfg_and_all_samplers_run_on_both_objectives(tiny_model_dir, tiny_v_model_dir):
    for d, samplers in ((tiny_model_dir, ["pingpong", "euler", "dpmpp-2m"]), (tiny_v_model_dir, ["pingpong", "dpmpp-2m"])):
        tta = TextToAudio.from_pretrained(d)
        for sampler in samplers:
            out = tta.generate(["wind"], seconds=0.25, steps=3, sampler=sampler, cfg_scale=4.0, seed=0)
            assert torch.isfinite(out).all()


def test_bf16_generation_follows_fp32(tiny_model_dir):
    fp32 = TextToAudio.from_pretrained(tiny_model_dir)
    bf16 = TextToAudio.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    a = fp32.generate_latents("rain", steps=1, seed=0)
    b = bf16.generate_latents("rain", steps=1, seed=0).float()
    assert float((a - b).norm() / a.norm()) < 5e-2


@pytest.mark.parametrize("kwargs,match", [
    ({"prompts": [""]}, "empty"),
    ({"prompts": ["x" * 5000]}, "limit"),
    ({"seconds": 0}, "seconds"),
    ({"seconds": -1}, "seconds"),
    ({"seconds": float("nan")}, "seconds"),
    ({"seconds": 100}, "at most"),
    ({"steps": 0}, "steps"),
    ({"sampler": "ddim"}, "sampler"),
    ({"cfg_scale": -1.0}, "cfg"),
])
def test_bad_generation_arguments_fail_before_compute(tiny_model_dir, kwargs, match):
    tta = TextToAudio.from_pretrained(tiny_model_dir)
    args = {"prompts": ["ok"], **kwargs}
    with pytest.raises(ValueError, match=match):
        tta.generate(**args)


def test_fp16_on_cpu_is_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="float16"):
        TextToAudio.from_pretrained(tiny_model_dir, dtype=torch.float16)


def test_text_conditioner_cache_gives_the_encoder_output(tiny_model_dir):
    from prestissimo.models.conditioners import T5Conditioner
    from prestissimo.pipeline import TextToAudio

    tta = TextToAudio.from_pretrained(tiny_model_dir)
    cond = next(c for c in tta.conditioner.conditioners.values() if isinstance(c, T5Conditioner))
    cond.cache_size = 3
    first, _ = cond(["a", "b", "a"], "cpu")
    second, mask = cond(["c", "a", "d", "e"], "cpu")  # "a" from the cache, then evictions down to 3 entries
    fresh, fresh_mask = cond._encode(["c", "a", "d", "e"], "cpu")
    if isinstance(cond.proj_out, torch.nn.Linear):
        fresh = cond.proj_out(fresh)
    assert torch.allclose(second, fresh * fresh_mask.unsqueeze(-1), atol=1e-6) and torch.equal(mask, fresh_mask)
    assert torch.allclose(first[0], first[2]) and len(cond.__dict__["_cache"]) == 3
