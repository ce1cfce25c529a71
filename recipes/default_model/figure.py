"""The README's picture of the shipped model: a few prompts, their spectrograms, and what the audio
measurably is (the synthbench estimators' readings), so the description next to it is not a guess.

    python recipes/default_model/figure.py --out docs/default_model_spectrograms.png

Generates with the model's own defaults (sampler, steps, CFG) at one seed, saves the WAVs next to the
picture (or in --wav-dir) and prints a markdown table: prompt, sound family, median pitch and register, tempo, level.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prestissimo.evaluation.adherence import (estimate_bpm, estimate_family, estimate_loudness, estimate_register,
                                              median_f0)
from prestissimo.evaluation.audio_features import analyse
from prestissimo.evaluation.plots import spectrogram_grid
from prestissimo.pipeline import TextToAudio

PROMPTS = [
    "a slow piano melody in C major",
    "A fast busy drum beat",
    "Loud white noise fading in",
    "A high flute playing a fast melody",
    "A low quiet bass note with vibrato",
    "rain on a tin roof at night",  # outside the templates: "tin", "roof" and "night" are in no caption
]


def describe(clip, sample_rate: int) -> dict[str, str]:
    f = analyse(clip, sample_rate)
    hz, bpm = median_f0(f), estimate_bpm(f)
    return {"family": estimate_family(f), "pitch": f"{hz:.0f} Hz ({estimate_register(f)})" if hz else "none",
            "tempo": f"{bpm:.0f} bpm" if bpm else "no beat", "level": f"{f.level_db:.0f} dB ({estimate_loudness(f)})"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory (default: the one in the package)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--wav-dir", type=Path, default=None, help="where the WAVs go (default: next to the PNG)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompts", nargs="+", default=PROMPTS)
    args = parser.parse_args()
    model = TextToAudio.from_pretrained(args.model)
    audio = model.generate(args.prompts, seed=args.seed)
    clips = [c.numpy() for c in audio]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    wav_dir = args.wav_dir or args.out.with_suffix("")
    for i, clip in enumerate(audio):
        model.save_wav(clip, wav_dir / f"{i}.wav")
    spectrogram_grid(clips, model.sample_rate, args.prompts, args.out)
    print("| prompt | family | median pitch | tempo | level |\n|---|---|---|---|---|")
    for prompt, clip in zip(args.prompts, clips):
        d = describe(clip, model.sample_rate)
        print(f"| {prompt} | {d['family']} | {d['pitch']} | {d['tempo']} | {d['level']} |")
    print(f"\nseed {args.seed}; {model.config.sampling.sampler}, {model.config.sampling.steps} steps, "
          f"CFG {model.config.sampling.cfg_scale:g}; picture {args.out}, audio in {wav_dir}/")


if __name__ == "__main__":
    main()
