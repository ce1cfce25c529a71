"""Experiment (session 24): a small text -> envelope prior, then the joint DiT with that envelope held.

The joint DiT (latents + envelope channels) follows an envelope it is given but lays out no beat
itself (benchmarks/rhythm_probe.py). This trains a second, much smaller DiT on the envelope
channels alone, pooled to 50 Hz: a few thousand numbers per clip instead of ~15,000, so on a CPU it
takes several times more steps in the same minutes. It reports the beat regularity and tempo class
of the envelopes it makes for 15 tempo prompts, and with --joint the same for the audio of the
two-stage chain: prior envelope (upsampled) -> joint DiT sampled from noise with it held.

    python benchmarks/envelope_prior.py --latents LATENTS_DIR --text-model MODEL_DIR --minutes 20 \\
        --out prior.safetensors [--joint MODEL_DIR]

The prompt encoder is --text-model's (its conditioners and their trained projections, frozen).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from prestissimo.evaluation.adherence import (beat_autocorrelation, beat_regularity, estimate_bpm, estimate_family,
                                              tempo_class)
from prestissimo.evaluation.audio_features import analyse
from prestissimo.models.config import DiTConfig, EnvelopeSpec
from prestissimo.models.dit import DiffusionTransformer
from prestissimo.models.envelopes import normalise, silence
from prestissimo.pipeline import TextToAudio
from prestissimo.sampling.samplers import sample_euler
from prestissimo.sampling.schedules import linear_schedule


def load_envelopes(folder: Path, gain: float, pool: int, multiple: int) -> tuple[torch.Tensor, list[str], float]:
    """Normalised envelope channels of a cache [N, bands, frames / pool] (padded with silence to a
    multiple of ``multiple``), the captions, and the pooled frame rate."""
    index = json.loads((folder / "latents.json").read_text())
    if "envelope" not in index:
        raise SystemExit(f"{folder} has no envelopes: encode it with `prestissimo encode --envelopes`")
    spec = EnvelopeSpec.from_dict(index["envelope"])
    spec.gain = gain
    shards = {name: load_file(str(folder / name))["envelopes"] for name in sorted({r["shard"] for r in index["rows"]})}
    env = normalise(torch.stack([shards[r["shard"]][r["offset"]] for r in index["rows"]]), spec)
    frames = env.shape[-1] // pool
    env = env[..., : frames * pool].reshape(*env.shape[:2], frames, pool).mean(-1)
    padded = -(-frames // multiple) * multiple
    env = torch.cat([env, silence(spec).expand(len(env), -1, padded - frames)], -1)
    return env, [r["caption"] for r in index["rows"]], index["frames_per_second"] / pool


def without_prompt(pooled: torch.Tensor, prompt_mask: torch.Tensor | None) -> torch.Tensor:
    """The global vector with its prompt dims zeroed (what CFG dropout and the unconditional pass see)."""
    return pooled if prompt_mask is None else pooled.masked_fill(prompt_mask, 0.0)


def prior_config(bands: int, cond_dim: int, global_dim: int) -> DiTConfig:
    return DiTConfig(io_channels=bands, embed_dim=128, depth=4, num_heads=4, cond_token_dim=cond_dim,
                     global_cond_dim=global_dim, global_cond_type="adaLN", qk_norm="ln", patch_size=2,
                     sinusoidal_pos_emb=True)


def train_prior(net: DiffusionTransformer, env: torch.Tensor, tokens: torch.Tensor, pooled: torch.Tensor,
                prompt_mask: torch.Tensor | None, seconds: float, batch: int = 16, lr: float = 5e-4,
                cfg_dropout: float = 0.1, seed: int = 0, max_steps: int | None = None) -> int:
    """Rectified flow (uniform noise levels), AdamW, EMA 0.999; the position embedding's scale frozen.
    Runs for ``seconds`` of wall time (or ``max_steps``), then loads the EMA weights; returns the steps."""
    params = [p for n, p in net.named_parameters() if not n.endswith("pos_emb.scale")]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=0.01)
    ema = [p.detach().clone() for p in net.parameters()]
    g = torch.Generator().manual_seed(seed)
    step, start = 0, time.time()
    while time.time() - start < seconds and (max_steps is None or step < max_steps):
        i = torch.randint(0, len(env), (batch,), generator=g)
        x0, tok, glob = env[i], tokens[i].clone(), pooled[i].clone()
        drop = torch.rand(batch, generator=g) < cfg_dropout
        tok[drop] = 0.0
        glob[drop] = without_prompt(glob[drop], prompt_mask)
        noise, t = torch.randn(x0.shape, generator=g), torch.rand(batch, generator=g)
        xt = (1 - t)[:, None, None] * x0 + t[:, None, None] * noise
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 100)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            v = net(xt, t, cross_attn_cond=tok, global_cond=glob)
        loss = ((v.float() - (noise - x0)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            decay = min(0.999, (1 + step) / (10 + step))
            for e, p in zip(ema, net.parameters()):
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)
        step += 1
    with torch.no_grad():
        for e, p in zip(ema, net.parameters()):
            p.copy_(e)
    return step


@torch.no_grad()
def sample_prior(net: DiffusionTransformer, tokens: torch.Tensor, pooled: torch.Tensor, prompt_mask: torch.Tensor | None,
                 shape: tuple[int, int], steps: int = 30, cfg_scale: float = 4.0, seed: int = 0) -> torch.Tensor:
    """Envelopes [B, bands, frames] for the prompts' conditioning, euler with CFG."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(tokens), *shape, generator=g)
    uncond_tokens, uncond_pooled = torch.zeros_like(tokens), without_prompt(pooled, prompt_mask)

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v_c = net(x, t, cross_attn_cond=tokens, global_cond=pooled)
        v_u = net(x, t, cross_attn_cond=uncond_tokens, global_cond=uncond_pooled)
        return x - t.view(-1, 1, 1) * (v_u + cfg_scale * (v_c - v_u))

    return sample_euler(denoise, x, linear_schedule(steps))


def envelope_tempo(envelope: np.ndarray, frame_rate: float) -> tuple[float, float]:
    """(beat regularity, BPM) of envelope channels: beat_autocorrelation of their positive flux, and
    the BPM of the lag where it peaks (0 when there is none)."""
    score, lag = beat_autocorrelation(np.maximum(np.diff(envelope.mean(0)), 0.0), frame_rate)
    return score, (60.0 * frame_rate / lag if lag else 0.0)


def main() -> None:
    from rhythm_probe import held_envelope, probe_prompts

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latents", type=Path, required=True, help="a latent cache with envelopes")
    parser.add_argument("--text-model", type=Path, required=True, help="whose conditioners encode the prompts")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--gain", type=float, default=2.0, help="the envelope channels' std, as the joint DiT's")
    parser.add_argument("--pool", type=int, default=5, help="envelope frames averaged into one prior frame")
    parser.add_argument("--out", type=Path, default=None, help="save the prior's weights (safetensors)")
    parser.add_argument("--load", type=Path, default=None, help="skip training: the weights an earlier --out saved")
    parser.add_argument("--joint", type=Path, default=None, help="a joint DiT model directory for the chain")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)

    env, captions, rate = load_envelopes(args.latents, args.gain, args.pool, multiple=2)
    text = TextToAudio.from_pretrained(args.text_model)
    mask = text.global_prompt_mask()
    with torch.no_grad():
        parts = [text.conditioning_tokens(captions[i:i + 256], 5.0) for i in range(0, len(captions), 256)]
    tokens, pooled = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    net = DiffusionTransformer(prior_config(env.shape[1], tokens.shape[-1], pooled.shape[-1]))
    if args.load is not None:
        with safe_open(str(args.load), "pt") as f:
            trained = (f.metadata() or {}).get("steps", "an unrecorded number of")
        net.load_state_dict(load_file(str(args.load)))
        what = f"loaded from {args.load} ({trained} steps)"
    else:
        steps = train_prior(net, env, tokens, pooled, mask, args.minutes * 60)
        what = f"{steps} steps in {args.minutes:g} min"
        if args.out is not None:
            save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(args.out),
                      metadata={"steps": str(steps)})
    net.eval()

    prompts, tempos = probe_prompts()
    families = ["drums" if "drum" in p else "tonal" for p in prompts]
    with torch.no_grad():
        tok, pool = text.conditioning_tokens(prompts, 5.0)
    rows = {"prior envelopes": [], "two-stage audio": []}
    joint = TextToAudio.from_pretrained(args.joint) if args.joint is not None else None
    for seed in range(args.seeds):
        made = sample_prior(net, tok, pool, mask, tuple(env.shape[1:]), seed=seed)
        for e, tempo in zip(made.numpy(), tempos):
            regularity, bpm = envelope_tempo(e, rate)
            rows["prior envelopes"].append((regularity, tempo_class(bpm) == tempo, float("nan")))
        if joint is not None:
            d, length = joint.config.autoencoder.latent_dim, joint.config.latent_length
            held = torch.nn.functional.interpolate(made, scale_factor=args.pool, mode="linear")[..., :length]
            quiet = silence(joint.config.envelope).expand(len(held), -1, length - held.shape[-1])
            held = torch.cat([held, quiet], -1)
            denoise = joint.guided_denoiser(joint.encode_conditioning(prompts, 5.0), 4.0)
            noise = torch.randn(len(prompts), joint.config.dit.io_channels, length,
                                generator=torch.Generator().manual_seed(seed))
            latents = sample_euler(held_envelope(denoise, held, noise[:, d:], d), noise, linear_schedule(30),
                                   joint.config.objective)
            for a, tempo, family in zip(joint.decode(latents).float().numpy(), tempos, families):
                f = analyse(a.mean(0), joint.sample_rate)
                rows["two-stage audio"].append((beat_regularity(f), tempo_class(estimate_bpm(f)) == tempo,
                                                estimate_family(f) == family))
    print(f"prior: {sum(p.numel() for p in net.parameters())} parameters, {what}; "
          f"{len(prompts)} prompts x {args.seeds} seeds, euler 30 steps, CFG 4\n")
    print("| output | beat regularity | tempo class right | family right |\n|---|---:|---:|---:|")
    for name, values in rows.items():
        if values:
            reg, acc, fam = (np.nanmean([v[k] for v in values]) if not all(np.isnan(v[k]) for v in values)
                             else float("nan") for k in range(3))
            print(f"| {name} | {reg:.3f} | {acc:.2f} | " + ("-" if np.isnan(fam) else f"{fam:.2f}") + " |")


if __name__ == "__main__":
    main()
