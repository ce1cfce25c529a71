"""Wall time of the whole `prestissimo generate` command, as a user runs it: a fresh process each
time (Python start, imports, model and text-encoder loading, sampling, decoding, writing the WAV).

    python benchmarks/generate_wall_time.py --prompt "a slow piano melody in C major" --runs 3 --floors \
        "shipped model=" "base, 100 steps=--model runs/synthbench_base/dit/model --steps 100 --sampler euler"

Each row is LABEL=EXTRA_ARGS (added to `prestissimo generate PROMPT -o OUT --seconds S --seed 0 --quiet`);
leading VAR=VALUE words of EXTRA_ARGS set environment variables for that row only
("one BLAS thread=OPENBLAS_NUM_THREADS=1 --engine numpy"). Rows run interleaved, run by run, so drift on
a shared machine hits them alike; the table gives the median and the ratio to the first row.
To compare two versions of prestissimo, clone the older one and give its row "PYTHONPATH=/path/to/clone":
the `prestissimo` script then imports the clone's package before the installed one.
``--busy N`` keeps N other processes spinning on the CPU meanwhile: the command on a machine that is
doing something else too.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def command(prompt: str, out: Path, seconds: float, extra: str) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of one row's run."""
    words = shlex.split(extra)
    env = dict(os.environ)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    exe = shutil.which("prestissimo")
    base = [exe] if exe else [sys.executable, "-m", "prestissimo.serve.cli"]
    return base + ["generate", prompt, "-o", str(out), "--seconds", f"{seconds:g}", "--seed", "0", "--quiet",
                   *words], env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", nargs="+", help="LABEL=EXTRA_ARGS")
    parser.add_argument("--prompt", default="a slow piano melody in C major")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--floors", action="store_true",
                        help="also time `python -c pass` and `python -c 'import torch'`: what no torch-based command can beat")
    parser.add_argument("--busy", type=int, default=0, help="other processes spinning on the CPU during the runs")
    args = parser.parse_args()
    rows = [spec.partition("=")[::2] for spec in args.rows]
    floors = {"floor: python -c 'import torch'": [sys.executable, "-c", "import torch"],
              "floor: python -c 'pass'": [sys.executable, "-c", "pass"]} if args.floors else {}
    times: dict[str, list[float]] = {label: [] for label in [*(label for label, _ in rows), *floors]}
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        _measure(args, rows, floors, times)
    finally:
        for spinner in spinners:
            spinner.kill()
    first = statistics.median(times[rows[0][0]])
    busy = f", {args.busy} busy process(es) beside it" if args.busy else ""
    print(f"| command ({args.seconds:g} s clip, fresh process{busy}) | median s | runs | ratio to first row |")
    print("|---|---:|---:|---:|")
    for label in times:
        median = statistics.median(times[label])
        print(f"| {label} | {median:.2f} | {', '.join(f'{t:.2f}' for t in times[label])} | {median / first:.2f}x |")
    print(f"\nprompt {args.prompt!r}")


def _measure(args: argparse.Namespace, rows: list, floors: dict, times: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for label, extra in rows:
                out = Path(tmp) / f"{run}.wav"
                argv, env = command(args.prompt, out, args.seconds, extra)
                start = time.perf_counter()
                done = subprocess.run(argv, env=env, capture_output=True, text=True)
                elapsed = time.perf_counter() - start
                if done.returncode != 0 or not out.is_file():
                    raise SystemExit(f"{label}: prestissimo generate failed:\n{done.stderr}")
                times[label].append(elapsed)
            for label, argv in floors.items():
                start = time.perf_counter()
                subprocess.run(argv, check=True)
                times[label].append(time.perf_counter() - start)


if __name__ == "__main__":
    main()
