"""Does a model's envelope prior keep the prompt's beat, and does the audio keep it too?

A model with an envelope prior (`prestissimo train envelope-prior`) lays out its envelope channels
first and holds them while its DiT samples the latents. For 15 tempo prompts (rhythm_probe.py's:
slow / mid-tempo / fast x three melodies and two drum grooves) and a few seeds this prints the beat
regularity, tempo class and family of

- the prior's envelopes (the held envelope channels, before decoding),
- the audio, at the model's sampling (or --steps / --sampler / --cfg-scale),
- the audio of the same DiT without the prior (it generates its envelope channels itself).

    python benchmarks/envelope_prior.py --model MODEL_DIR [--seeds 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from prestissimo.evaluation.adherence import (beat_regularity, envelope_tempo, estimate_bpm, estimate_family,
                                              tempo_class)
from prestissimo.evaluation.audio_features import analyse
from prestissimo.pipeline import TextToAudio


def main() -> None:
    from rhythm_probe import probe_prompts

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a model directory with an envelope prior")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--sampler", default=None)
    parser.add_argument("--cfg-scale", type=float, default=None)
    args = parser.parse_args()

    tta = TextToAudio.from_pretrained(args.model)
    cfg = tta.config
    if cfg.envelope_prior is None:
        raise SystemExit(f"{args.model} has no envelope prior (prestissimo train envelope-prior)")
    d, rate = cfg.autoencoder.latent_dim, cfg.sample_rate / cfg.autoencoder.downsampling_ratio
    audible = int(args.seconds * rate)
    prompts, tempos = probe_prompts()
    families = ["drums" if "drum" in p else "tonal" for p in prompts]
    rows: dict[str, list[tuple[float, bool, float]]] = {"prior envelopes": [], "audio with the prior": [],
                                                         "audio without the prior": []}
    for seed in range(args.seeds):
        for use_prior, name in ((True, "audio with the prior"), (False, "audio without the prior")):
            with torch.no_grad():
                latents = tta.generate_latents(prompts, args.seconds, args.steps, args.sampler, args.cfg_scale, seed,
                                               use_envelope_prior=use_prior)
                audio = tta.decode(latents).float().numpy()[..., : int(args.seconds * tta.sample_rate)]
            if use_prior:
                for z, tempo in zip(latents[:, d:, :audible].numpy(), tempos):
                    regularity, bpm = envelope_tempo(z, rate)
                    rows["prior envelopes"].append((regularity, tempo_class(bpm) == tempo, float("nan")))
            for a, tempo, family in zip(audio, tempos, families):
                f = analyse(a.mean(0), tta.sample_rate)
                rows[name].append((beat_regularity(f), tempo_class(estimate_bpm(f)) == tempo,
                                   float(estimate_family(f) == family)))
    s = cfg.sampling
    print(f"{args.model}: {len(prompts)} prompts x {args.seeds} seeds; {args.sampler or s.sampler}, "
          f"{args.steps or s.steps} steps, CFG {args.cfg_scale or s.cfg_scale}; the prior: euler "
          f"{cfg.envelope_prior.steps} steps, CFG {cfg.envelope_prior.cfg_scale}\n")
    print("| output | beat regularity | tempo class right | family right |\n|---|---:|---:|---:|")
    for name, values in rows.items():
        reg, acc, fam = (np.mean([v[k] for v in values]) for k in range(3))
        print(f"| {name} | {reg:.3f} | {acc:.2f} | " + ("-" if np.isnan(fam) else f"{fam:.2f}") + " |")


if __name__ == "__main__":
    main()
