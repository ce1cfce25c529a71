"""Does a model with envelope channels keep a beat, and does its audio follow the envelopes it makes?

Two readings of one model directory (a DiT trained on a latent cache with `--envelopes`):

1. free generation (the DiT alone, without any envelope prior): 15 prompts (slow / mid-tempo /
   fast x three melodies and two drum grooves), euler sampling with CFG; the beat regularity and
   tempo class of the audio, and the beat regularity of the envelope channels the model generated
   (before decoding).
2. envelope given: clips of a latent cache (captions naming a BPM), sampled again from noise with
   the envelope channels held to the clip's own (noised to each step's level, the "replacement"
   way of inpainting); the beat regularity of the audio and the correlation of its loudness with
   the clip's reconstruction. High here and low in (1): the model can follow a beat it is given but
   does not lay one out itself.

    python benchmarks/rhythm_probe.py --model RUN/model --latents LATENTS_DIR [--clips 8] [--steps 30]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from prestissimo.data.latents import LatentDataset
from prestissimo.evaluation.adherence import beat_regularity, envelope_tempo, estimate_bpm, tempo_class
from prestissimo.evaluation.audio_features import analyse
from prestissimo.pipeline import TextToAudio
from prestissimo.sampling.guidance import hold_channels
from prestissimo.sampling.samplers import sample_euler
from prestissimo.sampling.schedules import linear_schedule

TEMPO_WORDS = {"slow": "slow", "moderate": "mid-tempo", "fast": "fast"}
MELODIES = ("grand piano", "marimba", "sawtooth synth")
GROOVES = ("sparse", "busy")


def probe_prompts() -> tuple[list[str], list[str]]:
    prompts, tempos = [], []
    for tempo, word in TEMPO_WORDS.items():
        prompts += [f"A mid-range {i} playing a {word} staccato melody in C major" for i in MELODIES]
        prompts += [f"A {word} {d} drum beat" for d in GROOVES]
        tempos += [tempo] * (len(MELODIES) + len(GROOVES))
    return prompts, tempos


def frame_loudness(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Level in dB per 10 ms frame."""
    hop = sample_rate // 100
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    return 10 * np.log10((frames**2).mean(1) + 1e-8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--latents", type=Path, required=True, help="a latent cache with envelopes")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--cfg-scale", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tta = TextToAudio.from_pretrained(args.model)
    cfg = tta.config
    if cfg.envelope is None:
        raise SystemExit(f"{args.model} generates no envelope channels (train it on `prestissimo encode --envelopes`)")
    d, rate = cfg.autoencoder.latent_dim, cfg.sample_rate / cfg.autoencoder.downsampling_ratio
    ts = linear_schedule(args.steps)
    rows = []

    prompts, tempos = probe_prompts()
    latents = tta.generate_latents(prompts, steps=args.steps, sampler="euler", cfg_scale=args.cfg_scale,
                                   seed=args.seed, use_envelope_prior=False)
    features = [analyse(a.mean(0), tta.sample_rate) for a in tta.decode(latents).float().numpy()]
    rows.append(("free generation", len(prompts), np.mean([beat_regularity(f) for f in features]),
                 np.mean([tempo_class(estimate_bpm(f)) == t for f, t in zip(features, tempos)]),
                 np.mean([envelope_tempo(z[d:].numpy(), rate)[0] for z in latents]), float("nan")))

    data = LatentDataset(args.latents, frames=cfg.latent_length)
    data.envelope = cfg.envelope
    rng = np.random.default_rng(args.seed)
    items = [data.get(i, rng) for i in range(len(data)) if "BPM" in data.rows[i]["caption"]][: args.clips]
    real = torch.stack([i["latents"] for i in items])
    generator = torch.Generator().manual_seed(args.seed)
    noise = torch.randn(real.shape, generator=generator)
    denoise = tta.guided_denoiser(tta.encode_conditioning([i["caption"] for i in items],
                                                          [i["seconds_total"] for i in items]), args.cfg_scale)
    made = sample_euler(hold_channels(denoise, real[:, d:], noise[:, d:], d, cfg.objective), noise, ts, cfg.objective)
    audio, reference = tta.decode(made).float().numpy(), tta.decode(real).float().numpy()
    features = [analyse(a.mean(0), tta.sample_rate) for a in audio]
    corr = [np.corrcoef(frame_loudness(a.mean(0), tta.sample_rate), frame_loudness(r.mean(0), tta.sample_rate))[0, 1]
            for a, r in zip(audio, reference)]
    rows.append(("clip's envelope held", len(items), np.mean([beat_regularity(f) for f in features]), float("nan"),
                 np.mean([envelope_tempo(z[d:].numpy(), rate)[0] for z in real]), float(np.mean(corr))))
    reference_features = [analyse(r.mean(0), tta.sample_rate) for r in reference]
    rows.append(("the clips, reconstructed", len(items), np.mean([beat_regularity(f) for f in reference_features]),
                 float("nan"), float("nan"), 1.0))

    print(f"{args.model}: euler {args.steps} steps, CFG {args.cfg_scale}, seed {args.seed}\n")
    print("| audio | clips | beat regularity | tempo class right | envelope-channel regularity "
          "| loudness corr with the clip |")
    print("|---|---:|---:|---:|---:|---:|")
    fmt = lambda v: "-" if np.isnan(v) else f"{v:.3f}"  # noqa: E731
    for name, n, reg, acc, env, c in rows:
        print(f"| {name} | {n} | {fmt(reg)} | {fmt(acc)} | {fmt(env)} | {fmt(c)} |")


if __name__ == "__main__":
    main()
