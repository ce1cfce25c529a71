"""What the synthbench estimator reads for one attribute (family by default) from each clip of an
evaluation, against what its prompt asked for: a confusion table, with the median share of noisy frames
of each row (a tone under a noise floor reads as noise, and its pitch track thins out).

    python benchmarks/attribute_confusion.py runs/default_model/eval_env/shipped/audio \
        runs/default_model/data/test/manifest.jsonl [--attribute register]

Reads `prestissimo eval`'s audio folder (<key>_s0.wav per prompt, first seed) or, with --reference,
the manifest's own clips. Only clips the attribute is defined for count (register: tonal prompts).
Says where an evaluation's errors lie (docs/training.md, "Family: what makes a generated tone read as
noise").
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np
import soundfile as sf

from prestissimo.data.manifest import read_manifest
from prestissimo.evaluation.adherence import ESTIMATORS, noisy_fraction
from prestissimo.evaluation.audio_features import analyse
from prestissimo.evaluation.runner import clip_name

# The natural order of the attributes people read most; others are sorted.
ORDER = {"family": ("tonal", "drums", "noise"), "register": ("low", "mid", "high"),
         "tempo": ("slow", "moderate", "fast")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio_dir", type=Path, help="`prestissimo eval` audio folder (ignored with --reference)")
    parser.add_argument("manifest", type=Path, help="the prompts' synthbench manifest")
    parser.add_argument("--attribute", default="family", choices=sorted(ESTIMATORS))
    parser.add_argument("--reference", action="store_true", help="read the manifest's own clips instead")
    args = parser.parse_args()

    estimator = ESTIMATORS[args.attribute]
    counts: collections.Counter = collections.Counter()
    noisy: dict[str, list[float]] = collections.defaultdict(list)
    for entry in read_manifest(args.manifest):
        attributes = entry.attributes
        if args.attribute not in attributes or not estimator.applies(attributes):
            continue
        path = entry.path if args.reference else args.audio_dir / clip_name(entry, 0)
        if not path.is_file():  # an evaluation run with --limit: its first prompts only
            break
        audio, rate = sf.read(str(path), always_2d=True)
        features = analyse(audio.T, rate)
        asked = str(attributes[args.attribute])
        counts[asked, str(estimator.estimate(features))] += 1
        noisy[asked].append(noisy_fraction(features))
    if not counts:
        raise SystemExit(f"no clip of {args.manifest} has an attribute {args.attribute!r} to read")
    seen = {value for pair in counts for value in pair}
    values = [v for v in ORDER.get(args.attribute, ()) if v in seen] + sorted(seen - set(ORDER.get(args.attribute, ())))
    print("| asked \\ read | " + " | ".join(v or "(no reading)" for v in values) + " | median noisy fraction |")
    print("|---|" + "---:|" * (len(values) + 1))
    for asked in values:
        if noisy[asked]:
            print(f"| {asked} | " + " | ".join(str(counts[asked, read]) for read in values)
                  + f" | {np.median(noisy[asked]):.2f} |")


if __name__ == "__main__":
    main()
