"""One table from several `prestissimo eval` runs, plus single-clip latency measured here, now.

    python benchmarks/eval_table.py "base, 100 steps=runs/x/eval/base-100" "ARC, 8 steps=runs/x/eval/arc-8" \
        [--latency-runs 3] [--markdown]

Quality columns come from each run's metrics.json. Latency is measured in this process for every
row on the same machine, back to back (one prompt, batch 1, the row's model, sampler, steps and CFG;
median of --latency-runs after a warm-up), and given as a ratio to the first row as well, because
absolute times on a shared machine drift.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def measure_latency(metrics: dict, runs: int) -> float:
    from prestissimo.pipeline import TextToAudio

    tta = TextToAudio.from_pretrained(metrics["model"])
    kwargs = dict(steps=metrics["steps"], sampler=metrics["sampler"], cfg_scale=metrics["cfg_scale"])
    tta.generate(["a slow low sine melody"], seed=0, **kwargs)  # warm-up
    times = []
    for k in range(runs):
        start = time.perf_counter()
        tta.generate(["a slow low sine melody"], seed=k + 1, **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", nargs="+", help="LABEL=EVAL_DIR (a folder holding metrics.json)")
    parser.add_argument("--latency-runs", type=int, default=3, help="0 = skip the latency measurement")
    args = parser.parse_args()

    rows = []
    for spec in args.rows:
        label, _, folder = spec.rpartition("=")
        if not label:
            raise SystemExit(f"expected LABEL=DIR, got {spec!r}")
        metrics = json.loads((Path(folder) / "metrics.json").read_text())
        rows.append((label, metrics))
    # Rows scored with `eval --audio` (no model: reconstructions, another system's files) get no latency.
    latency = [measure_latency(m, args.latency_runs) if args.latency_runs > 0 and m.get("model") else None
               for _, m in rows]

    header = ["system", "sampler / steps / CFG", "network calls", "latency s (batch 1)", "speed-up",
              "Fréchet distance", "adherence", "chance", "p", "diversity / prompt", "diversity overall"]
    print("| " + " | ".join(header) + " |")
    print("|---|---|" + "---:|" * (len(header) - 2))
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for (label, m), lat in zip(rows, latency):
        sampling = f"{m['sampler']} / {m['steps']} / {m['cfg_scale']:g}" if "sampler" in m else "-"
        speed_up = f"{latency[0] / lat:.1f}x" if lat and latency[0] else "-"
        print("| " + " | ".join([
            label, sampling, str(m.get("network_evaluations_per_clip", "-")), fmt(lat), speed_up,
            fmt(m.get("fd")), fmt(m.get("adherence")),
            fmt(m.get("adherence_chance")), fmt(m.get("adherence_p_value")), fmt(m.get("diversity_conditional")),
            fmt(m.get("diversity_unconditional")),
        ]) + " |")
    first = rows[0][1]
    timing = (f"latency median of {args.latency_runs} runs, speed-up relative to the first row"
              if args.latency_runs > 0 else "latency not measured")
    print(f"\n{first.get('n_prompts')} prompts x {first.get('seeds_per_prompt')} seeds from {first.get('prompts')}; "
          f"embedding {first.get('embedding')}; {timing}; chance = mean adherence with every clip judged against another "
          "clip's prompt, p = share of such shufflings scoring at least the row's adherence (a permutation test)")


if __name__ == "__main__":
    main()
