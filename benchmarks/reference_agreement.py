"""Print the relative errors between prestissimo and diffusers (same random weights, fp32).

    python benchmarks/reference_agreement.py [--full]

The tests assert these are below 1e-4; this prints the figures. ``--full`` adds the released sizes
(SAO Small and 1.0 DiTs, the Oobleck VAE): a few minutes and ~10 GB of memory.
"""

from __future__ import annotations

import argparse
import copy

import torch
from diffusers.models.embeddings import get_1d_rotary_pos_embed

from prestissimo.models import AutoencoderConfig, DiffusionTransformer, DiTConfig, ModelConfig, OobleckAutoencoder
from prestissimo.models.factory import randomize_
from prestissimo.models.presets import sao_1_0, sao_small
from prestissimo.runtime.reference import diffusers_dit, diffusers_vae


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def dit_error(cfg: DiTConfig, length: int = 24) -> float:
    ours = randomize_(DiffusionTransformer(cfg)).eval()
    ref = diffusers_dit(ours).eval()
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(1, cfg.io_channels, length, generator=g), torch.rand(1, generator=g)
    tokens = torch.randn(1, 7, cfg.cond_token_dim, generator=g)
    glob = torch.randn(1, cfg.global_cond_dim, generator=g)
    with torch.no_grad():
        rotary = get_1d_rotary_pos_embed(cfg.dim_heads // 2, length + 1, use_real=True, repeat_interleave_real=False)
        b = ref(x, t, encoder_hidden_states=tokens, global_hidden_states=glob.unsqueeze(1), rotary_embedding=rotary,
                return_dict=False)[0]
        return rel(ours(x, t, cross_attn_cond=tokens, global_cond=glob), b)


def vae_errors(cfg: AutoencoderConfig, frames: int) -> tuple[float, float]:
    ours = randomize_(OobleckAutoencoder(cfg)).eval()
    ref = diffusers_vae(ours).eval()
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, cfg.latent_dim, frames, generator=g)
    audio = torch.randn(1, cfg.audio_channels, frames * cfg.downsampling_ratio, generator=g) * 0.3
    with torch.no_grad():
        return rel(ours.decode(z), ref.decode(z).sample), rel(ours.encoder(audio), ref.encoder(audio))


def shrunk(config: dict, embed_dim: int, num_heads: int, cond_dim: int) -> DiTConfig:
    c = copy.deepcopy(config["model"]["diffusion"]["config"])
    n_global = len(config["model"]["diffusion"]["global_cond_ids"])
    c.update(embed_dim=embed_dim, num_heads=num_heads, depth=2, cond_token_dim=cond_dim,
             global_cond_dim=n_global * cond_dim, io_channels=16)
    return DiTConfig.from_dict(c)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="also the released sizes")
    args = parser.parse_args()
    rows = [("DiT, SAO 1.0 structure (shrunken)", dit_error(shrunk(sao_1_0(), 256, 4, 128))),
            ("DiT, SAO Small structure (shrunken)", dit_error(shrunk(sao_small(), 256, 2, 96)))]
    small_vae = AutoencoderConfig(audio_channels=2, channels=16, c_mults=[1, 2, 4], strides=[2, 4, 4], latent_dim=8)
    dec, enc = vae_errors(small_vae, 4)
    rows += [("Oobleck decode (shrunken)", dec), ("Oobleck encode (shrunken)", enc)]
    if args.full:
        rows.append(("DiT, SAO Small (released size)", dit_error(ModelConfig.from_dict(sao_small()).dit, 16)))
        rows.append(("DiT, SAO 1.0 (released size)", dit_error(ModelConfig.from_dict(sao_1_0()).dit, 16)))
        dec, enc = vae_errors(ModelConfig.from_dict(sao_small()).autoencoder, 2)
        rows += [("Oobleck decode (released size)", dec), ("Oobleck encode (released size)", enc)]
    print("| component | relative error vs diffusers (fp32) |\n| --- | --- |")
    for name, err in rows:
        print(f"| {name} | {err:.1e} |")


if __name__ == "__main__":
    main()
