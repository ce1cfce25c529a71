"""Numerical agreement with an independent implementation: diffusers' Stable Audio DiT and Oobleck VAE.

Random weights in the released layout are loaded into prestissimo and, through a key mapping written
here, into diffusers; outputs must agree to a relative error below 1e-4 in fp32.
"""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import randomize_
from prestissimo.models import AutoencoderConfig, DiffusionTransformer, DiTConfig, ModelConfig, OobleckAutoencoder
from prestissimo.models.presets import sao_1_0, sao_small

diffusers = pytest.importorskip("diffusers")
from diffusers import AutoencoderOobleck, StableAudioDiTModel  # noqa: E402
from diffusers.models.embeddings import get_1d_rotary_pos_embed  # noqa: E402


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ---------------------------------------------------------------------------------------------- DiT
def dit_to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our (= stable-audio-tools) DiT keys -> diffusers StableAudioDiTModel keys."""
    out: dict[str, torch.Tensor] = {}
    block_names = {"pre_norm": "norm1", "cross_attend_norm": "norm2", "ff_norm": "norm3",
                   "self_attn": "attn1", "cross_attn": "attn2"}
    top_names = {"to_timestep_embed": "timestep_proj", "to_global_embed": "global_proj",
                 "to_cond_embed": "cross_attention_proj", "transformer.project_in": "proj_in",
                 "transformer.project_out": "proj_out"}
    for key, value in state.items():
        if key == "transformer.rotary_pos_emb.inv_freq":
            continue  # diffusers computes rotary frequencies in the pipeline
        if key == "timestep_features.weight":
            out["time_proj.weight"] = value.squeeze(1)
            continue
        if key.startswith("transformer.layers."):
            _, _, idx, module, *rest = key.split(".")
            prefix = f"transformer_blocks.{idx}.{block_names.get(module, module)}"
            leaf = ".".join(rest)
            if module.endswith("norm"):
                out[f"{prefix}.{'weight' if leaf == 'gamma' else 'bias'}"] = value
            elif leaf == "to_qkv.weight":
                for name, part in zip("qkv", value.chunk(3, dim=0)):
                    out[f"{prefix}.to_{name}.weight"] = part
            elif leaf == "to_kv.weight":
                for name, part in zip("kv", value.chunk(2, dim=0)):
                    out[f"{prefix}.to_{name}.weight"] = part
            elif leaf == "to_out.weight":
                out[f"{prefix}.to_out.0.weight"] = value
            elif module == "ff":
                out[f"transformer_blocks.{idx}.ff.net.{leaf[len('ff.'):]}"] = value
            else:  # to_q, q_norm -> norm_q, k_norm -> norm_k
                leaf = leaf.replace("q_norm", "norm_q").replace("k_norm", "norm_k")
                out[f"{prefix}.{leaf}"] = value
            continue
        for ours, theirs in top_names.items():
            if key.startswith(ours + "."):
                key = theirs + key[len(ours):]
                break
        out[key] = value
    return out


def diffusers_dit(cfg: DiTConfig) -> StableAudioDiTModel:
    model = StableAudioDiTModel(
        sample_size=64, in_channels=cfg.io_channels, num_layers=cfg.depth, attention_head_dim=cfg.dim_heads,
        num_attention_heads=cfg.num_heads, num_key_value_attention_heads=cfg.cond_embed_dim // cfg.dim_heads,
        out_channels=cfg.io_channels, cross_attention_dim=cfg.cond_embed_dim, time_proj_dim=256,
        global_states_input_dim=cfg.global_cond_dim, cross_attention_input_dim=cfg.cond_token_dim,
    )
    if cfg.qk_norm == "ln":
        # diffusers' attention processor applies norm_q/norm_k when present; its Stable Audio config
        # just has no switch for them, so attach them the way stable-audio-tools builds them.
        for block in model.transformer_blocks:
            for attn in (block.attn1, block.attn2):
                attn.norm_q = torch.nn.LayerNorm(cfg.dim_heads, eps=1e-6)
                attn.norm_k = torch.nn.LayerNorm(cfg.dim_heads, eps=1e-6)
    return model


def compare_dit(cfg: DiTConfig, length: int = 24, n_tokens: int = 7, batch: int = 2, seed: int = 0) -> float:
    ours = randomize_(DiffusionTransformer(cfg), seed=seed).eval()
    ref = diffusers_dit(cfg).eval()
    ref.load_state_dict(dit_to_diffusers(ours.state_dict()), strict=True)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, cfg.io_channels, length, generator=g)
    t = torch.rand(batch, generator=g)
    tokens = torch.randn(batch, n_tokens, cfg.cond_token_dim, generator=g)
    global_cond = torch.randn(batch, cfg.global_cond_dim, generator=g)
    with torch.no_grad():
        a = ours(x, t, cross_attn_cond=tokens, global_cond=global_cond)
        rotary = get_1d_rotary_pos_embed(cfg.dim_heads // 2, length + 1, use_real=True, repeat_interleave_real=False)
        b = ref(x, t, encoder_hidden_states=tokens, global_hidden_states=global_cond.unsqueeze(1),
                rotary_embedding=rotary, return_dict=False)[0]
    assert a.shape == b.shape == x.shape
    assert b.abs().mean() > 1e-3, "reference output is trivially small: the comparison would prove nothing"
    return rel_err(a, b)


def shrunken_dit(config: dict, embed_dim: int, num_heads: int, cond_dim: int, depth: int = 2) -> DiTConfig:
    c = copy.deepcopy(config["model"]["diffusion"]["config"])
    n_global = len(config["model"]["diffusion"]["global_cond_ids"])
    c.update(embed_dim=embed_dim, num_heads=num_heads, depth=depth, cond_token_dim=cond_dim,
             global_cond_dim=n_global * cond_dim, io_channels=16)
    return DiTConfig.from_dict(c)


def test_dit_matches_diffusers_sao_1_0_structure():
    # SAO 1.0: head width 64, unprojected 768-d context -> grouped-query cross-attention (2 query heads per kv head)
    cfg = shrunken_dit(sao_1_0(), embed_dim=256, num_heads=4, cond_dim=128)
    assert cfg.cond_embed_dim // cfg.dim_heads == 2 and cfg.num_heads == 4
    assert compare_dit(cfg) < 1e-4


def test_dit_matches_diffusers_sao_small_structure():
    # SAO Small: head width 128, context projected to the model width, LayerNorm q/k normalisation
    cfg = shrunken_dit(sao_small(), embed_dim=256, num_heads=2, cond_dim=96)
    assert cfg.qk_norm == "ln" and cfg.project_cond_tokens
    assert compare_dit(cfg) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("preset", [sao_small, sao_1_0], ids=["sao-small", "sao-1.0"])
def test_dit_matches_diffusers_full_size(preset):
    cfg = ModelConfig.from_dict(preset()).dit
    assert compare_dit(cfg, length=16, n_tokens=4, batch=1) < 1e-4


# ---------------------------------------------------------------------------------------------- VAE
def vae_to_diffusers(state: dict[str, torch.Tensor], n_blocks: int) -> dict[str, torch.Tensor]:
    """Our (= stable-audio-tools) Oobleck keys -> diffusers AutoencoderOobleck keys."""
    unit = {"0": "snake1", "1": "conv1", "2": "snake2", "3": "conv2"}
    out = {}
    for key, value in state.items():
        part, _, idx, *rest = key.split(".")
        i = int(idx)
        if i == 0:
            name = "conv1." + ".".join(rest)
        elif i == n_blocks + 1:
            name = "snake1." + ".".join(rest)
        elif i == n_blocks + 2:
            name = "conv2." + ".".join(rest)
        else:
            _, sub, *leaf = rest  # layers.<sub>...
            s = int(sub)
            res_units = range(3) if part == "encoder" else range(2, 5)
            if s in res_units:
                unit_no = s + 1 if part == "encoder" else s - 1
                _, inner, *leaf2 = leaf
                name = f"block.{i - 1}.res_unit{unit_no}.{unit[inner]}.{'.'.join(leaf2)}"
            else:
                role = {("encoder", 3): "snake1", ("encoder", 4): "conv1",
                        ("decoder", 0): "snake1", ("decoder", 1): "conv_t1"}[(part, s)]
                name = f"block.{i - 1}.{role}.{'.'.join(leaf)}"
        if "snake" in name:
            value = value[None, :, None]
        out[f"{part}.{name}"] = value
    return out


def compare_vae(cfg: AutoencoderConfig, frames: int = 3, seed: int = 0) -> tuple[float, float]:
    ours = randomize_(OobleckAutoencoder(cfg), seed=seed).eval()
    assert cfg.channels == cfg.encoder_latent_dim, "diffusers ties the encoder output width to its base width"
    ref = AutoencoderOobleck(encoder_hidden_size=cfg.channels, downsampling_ratios=cfg.strides,
                             channel_multiples=cfg.c_mults, decoder_channels=cfg.channels,
                             decoder_input_channels=cfg.latent_dim, audio_channels=cfg.audio_channels).eval()
    ref.load_state_dict(vae_to_diffusers(ours.state_dict(), len(cfg.strides)), strict=True)
    g = torch.Generator().manual_seed(seed + 1)
    z = torch.randn(1, cfg.latent_dim, frames, generator=g)
    audio = torch.randn(1, cfg.audio_channels, frames * cfg.downsampling_ratio, generator=g) * 0.3
    with torch.no_grad():
        dec_err = rel_err(ours.decode(z), ref.decode(z).sample)
        enc_err = rel_err(ours.encoder(audio), ref.encoder(audio))
    return dec_err, enc_err


def test_vae_matches_diffusers_shrunken():
    cfg = AutoencoderConfig(audio_channels=2, channels=16, c_mults=[1, 2, 4], strides=[2, 4, 4], latent_dim=8)
    dec_err, enc_err = compare_vae(cfg, frames=4)
    assert dec_err < 1e-4 and enc_err < 1e-4


@pytest.mark.slow
def test_vae_matches_diffusers_released_size():
    cfg = ModelConfig.from_dict(sao_small()).autoencoder
    dec_err, enc_err = compare_vae(cfg, frames=2)
    assert dec_err < 1e-4 and enc_err < 1e-4
