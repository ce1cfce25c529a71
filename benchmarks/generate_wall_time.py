"""Wall time of the whole `prestissimo generate` command, as a user runs it: a fresh process each
time (Python start, imports, model and text-encoder loading, sampling, decoding, writing the WAV).

    python benchmarks/generate_wall_time.py --prompt "a slow piano melody in C major" --runs 3 --floors \
        "shipped model=" "base, 100 steps=--model runs/synthbench_base/dit/model --steps 100 --sampler euler"

Each row is LABEL=EXTRA_ARGS (added to `prestissimo generate PROMPT -o OUT --seconds S --seed 0 --quiet`);
rows run interleaved, run by run, so drift on a shared machine hits them alike; the table gives the
median and the ratio to the first row.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def command(prompt: str, out: Path, seconds: float, extra: str) -> list[str]:
    exe = shutil.which("prestissimo")
    base = [exe] if exe else [sys.executable, "-m", "prestissimo.serve.cli"]
    return base + ["generate", prompt, "-o", str(out), "--seconds", f"{seconds:g}", "--seed", "0", "--quiet",
                   *shlex.split(extra)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", nargs="+", help="LABEL=EXTRA_ARGS")
    parser.add_argument("--prompt", default="a slow piano melody in C major")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--floors", action="store_true",
                        help="also time `python -c pass` and `python -c 'import torch'`: what no torch-based command can beat")
    args = parser.parse_args()
    rows = [spec.partition("=")[::2] for spec in args.rows]
    floors = {"floor: python -c 'import torch'": [sys.executable, "-c", "import torch"],
              "floor: python -c 'pass'": [sys.executable, "-c", "pass"]} if args.floors else {}
    times: dict[str, list[float]] = {label: [] for label in [*(label for label, _ in rows), *floors]}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for label, extra in rows:
                out = Path(tmp) / f"{run}.wav"
                start = time.perf_counter()
                done = subprocess.run(command(args.prompt, out, args.seconds, extra), capture_output=True, text=True)
                elapsed = time.perf_counter() - start
                if done.returncode != 0 or not out.is_file():
                    raise SystemExit(f"{label}: prestissimo generate failed:\n{done.stderr}")
                times[label].append(elapsed)
            for label, argv in floors.items():
                start = time.perf_counter()
                subprocess.run(argv, check=True)
                times[label].append(time.perf_counter() - start)
    first = statistics.median(times[rows[0][0]])
    print(f"| command ({args.seconds:g} s clip, fresh process) | median s | runs | ratio to first row |")
    print("|---|---:|---:|---:|")
    for label in times:
        median = statistics.median(times[label])
        print(f"| {label} | {median:.2f} | {', '.join(f'{t:.2f}' for t in times[label])} | {median / first:.2f}x |")
    print(f"\nprompt {args.prompt!r}")


if __name__ == "__main__":
    main()
