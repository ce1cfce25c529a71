"""An independent implementation with our weights: diffusers' Stable Audio DiT and Oobleck VAE.

Used by the tests (numerical agreement) and by ``prestissimo bench --compare-reference`` (speed ratio
in the same run). diffusers is an optional dependency: ``pip install diffusers``. The key mappings are
ours, written from the two module trees.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch

from ..models.autoencoder import OobleckAutoencoder
from ..models.dit import DiffusionTransformer

if TYPE_CHECKING:
    from diffusers import AutoencoderOobleck, StableAudioDiTModel


def dit_to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our (= stable-audio-tools) DiT keys -> diffusers StableAudioDiTModel keys."""
    out: dict[str, torch.Tensor] = {}
    block_names = {"pre_norm": "norm1", "cross_attend_norm": "norm2", "ff_norm": "norm3",
                   "self_attn": "attn1", "cross_attn": "attn2"}
    top_names = {"to_timestep_embed": "timestep_proj", "to_global_embed": "global_proj",
                 "to_cond_embed": "cross_attention_proj", "transformer.project_in": "proj_in",
                 "transformer.project_out": "proj_out"}
    if "transformer.pos_emb.scale" in state:
        raise ValueError("diffusers' StableAudioDiTModel has no absolute position embedding (use_sinusoidal_emb)")
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


def diffusers_dit(dit: DiffusionTransformer) -> "StableAudioDiTModel":
    """diffusers' StableAudioDiTModel holding the same weights as our DiT."""
    from diffusers import StableAudioDiTModel

    cfg = dit.cfg
    if cfg.patch_size != 1:
        raise ValueError("diffusers' StableAudioDiTModel has no patch_size: no reference for a patched DiT")
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
    model.load_state_dict(dit_to_diffusers(dit.state_dict()), strict=True)
    dtype = next(dit.parameters()).dtype
    return model if dtype == torch.float32 else model.to(dtype)


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


def diffusers_vae(ae: OobleckAutoencoder) -> "AutoencoderOobleck":
    """diffusers' AutoencoderOobleck holding the same weights as our autoencoder."""
    from diffusers import AutoencoderOobleck

    cfg = ae.cfg
    if cfg.channels != cfg.encoder_latent_dim:
        raise ValueError("diffusers ties the encoder output width to its base width; this VAE has no equivalent")
    ref = AutoencoderOobleck(encoder_hidden_size=cfg.channels, downsampling_ratios=cfg.strides,
                             channel_multiples=cfg.c_mults, decoder_channels=cfg.channels,
                             decoder_input_channels=cfg.latent_dim, audio_channels=cfg.audio_channels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.load_state_dict(vae_to_diffusers(ae.state_dict(), len(cfg.strides)), strict=True)
    return ref




def diffusers_velocity(model, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor,
                       global_cond: torch.Tensor) -> torch.Tensor:
    """One reference DiT call as diffusers' StableAudioPipeline makes it (rotary table built per call)."""
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    head_dim = model.config.attention_head_dim
    rotary = get_1d_rotary_pos_embed(head_dim // 2, x.shape[-1] + 1, use_real=True, repeat_interleave_real=False)
    return model(x, t, encoder_hidden_states=tokens, global_hidden_states=global_cond.unsqueeze(1),
                 rotary_embedding=rotary, return_dict=False)[0]
