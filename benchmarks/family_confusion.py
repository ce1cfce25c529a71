"""Which family (tonal / drums / noise) the synthbench estimator reads from each clip of an evaluation,
against the family its prompt asked for: a confusion table, and the median share of noisy frames.

    python benchmarks/family_confusion.py runs/default_model/eval_env/shipped/audio \
        runs/default_model/data/test/manifest.jsonl

Reads `prestissimo eval`'s audio folder (NNNNNN_s0.wav per prompt, first seed) or, with --reference,
the manifest's own clips. Says where the family errors of an evaluation lie (docs/training.md,
"Family: what makes a generated tone read as noise").
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from prestissimo.evaluation.adherence import estimate_family, noisy_fraction
from prestissimo.evaluation.audio_features import analyse

FAMILIES = ("tonal", "drums", "noise")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio_dir", type=Path, help="`prestissimo eval` audio folder (ignored with --reference)")
    parser.add_argument("manifest", type=Path, help="the prompts' synthbench manifest")
    parser.add_argument("--reference", action="store_true", help="read the manifest's own clips instead")
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip()]
    counts: collections.Counter = collections.Counter()
    noisy: dict[str, list[float]] = collections.defaultdict(list)
    for i, row in enumerate(rows):
        path = args.manifest.parent / row["path"] if args.reference else args.audio_dir / f"{i:06d}_s0.wav"
        if not path.is_file():
            break
        audio, rate = sf.read(str(path), always_2d=True)
        features = analyse(audio.T, rate)
        asked = row["attributes"]["family"]
        counts[asked, estimate_family(features)] += 1
        noisy[asked].append(noisy_fraction(features))
    print("| asked \\ read | " + " | ".join(FAMILIES) + " | median noisy fraction |")
    print("|---|" + "---:|" * (len(FAMILIES) + 1))
    for asked in FAMILIES:
        if noisy[asked]:
            print(f"| {asked} | " + " | ".join(str(counts[asked, read]) for read in FAMILIES)
                  + f" | {np.median(noisy[asked]):.2f} |")


if __name__ == "__main__":
    main()
