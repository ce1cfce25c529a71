"""Means of a training run's logged scalars over windows of steps, as one markdown table.

    python benchmarks/training_log_windows.py RUN_DIR [RUN_DIR ...] --windows 501-600 601-700 \
        [--keys generator/loss generator/d_real ...]

Reads RUN_DIR/metrics.jsonl, where each line is the mean over the `log_every` steps up to its `step`,
and averages the lines whose step lies in [FIRST, LAST]: with log_every 20 the line at step 520 covers
steps 501-520, so a window such as 501-600 holds whole log windows; each line is weighted by the steps
it covers. A key with no value in a window prints "-". Used for the discriminator/generator balance
tables in docs/arc.md, which the loss curves alone show less plainly than a few numbers side by side.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def read_log(path: Path) -> list[dict[str, float]]:
    lines = []
    for n, text in enumerate(path.read_text().splitlines(), 1):
        if not text.strip():
            continue
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path}:{n}: not a JSON line ({e.msg})") from None
    return lines


def parse_window(text: str) -> tuple[int, int]:
    try:
        first, last = (int(v) for v in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a window is FIRST-LAST (steps, e.g. 501-600), got {text!r}") from None
    if first > last:
        raise argparse.ArgumentTypeError(f"window {text!r} ends before it starts")
    return first, last


def window_means(lines: list[dict[str, float]], first: int, last: int, keys: list[str]) -> dict[str, float]:
    """Mean of each key over steps first..last, each log line weighted by the steps it covers (from the
    key's previous logged step); NaN where the window has no value. A step logged twice (a run resumed
    from an earlier checkpoint) keeps its later value, the one the run went on from."""
    means = {}
    for key in keys:
        by_step = {int(line["step"]): line[key] for line in lines if key in line}
        total = weight = 0.0
        previous = 0
        for step in sorted(by_step):
            if first <= step <= last:
                total += by_step[step] * (step - previous)
                weight += step - previous
            previous = step
        means[key] = total / weight if weight else math.nan
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories holding metrics.jsonl")
    parser.add_argument("--windows", nargs="+", type=parse_window, required=True, help="FIRST-LAST step ranges")
    parser.add_argument("--keys", nargs="+", default=None, help="scalars to show (default: every one logged)")
    args = parser.parse_args()
    logs = {}
    for run in args.runs:
        if not (run / "metrics.jsonl").is_file():
            parser.error(f"{run} has no metrics.jsonl")
        logs[run] = read_log(run / "metrics.jsonl")
    keys = args.keys or sorted({k for lines in logs.values() for line in lines for k in line if k != "step"})
    print("| run | steps | " + " | ".join(keys) + " |")
    print("|---|---|" + "---:|" * len(keys))
    for run, lines in logs.items():
        for first, last in args.windows:
            means = window_means(lines, first, last, keys)
            cells = ["-" if math.isnan(v) else f"{v:.3g}" for v in means.values()]
            print(f"| {run.name} | {first}-{last} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
