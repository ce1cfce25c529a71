"""Numerical agreement with an independent implementation: diffusers' Stable Audio DiT and Oobleck VAE.

Random weights in the released layout are loaded into prestissimo and, through our key mapping
(prestissimo.runtime.reference), into diffusers; outputs must agree to a relative error below 1e-4 in fp32.
"""

from __future__ import annotations

import copy

import pytest
import torch

from prestissimo.models.factory import randomize_
from prestissimo.models import AutoencoderConfig, DiffusionTransformer, DiTConfig, ModelConfig, OobleckAutoencoder
from prestissimo.models.presets import sao_1_0, sao_small

diffusers = pytest.importorskip("diffusers")
from diffusers.models.embeddings import get_1d_rotary_pos_embed  # noqa: E402

from prestissimo.runtime.reference import diffusers_dit, diffusers_vae  # noqa: E402


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def compare_dit(cfg: DiTConfig, length: int = 24, n_tokens: int = 7, batch: int = 2, seed: int = 0) -> float:
    ours = randomize_(DiffusionTransformer(cfg), seed=seed).eval()
    ref = diffusers_dit(ours).eval()
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


def compare_vae(cfg: AutoencoderConfig, frames: int = 3, seed: int = 0) -> tuple[float, float]:
    ours = randomize_(OobleckAutoencoder(cfg), seed=seed).eval()
    ref = diffusers_vae(ours).eval()
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
