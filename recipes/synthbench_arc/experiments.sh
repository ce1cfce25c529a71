#!/usr/bin/env bash
# Attempts to close the gap between ARC and the base (docs/arc.md, "Variants tried"): each variant is the
# ARC recipe with one change, trained and scored like the table's "ARC, 8 steps" row. Run after run.sh.
#   bash recipes/synthbench_arc/experiments.sh            (from the repository root)
set -euo pipefail
HERE=recipes/synthbench_arc
BASE=${BASE:-runs/synthbench_base}
RUNS=${RUNS:-runs/synthbench_arc}
TEST="$BASE/data/test/manifest.jsonl"

resume() { [ -d "$1/checkpoints" ] && echo --resume || true; }
rows=("ARC (arc.json), 8 steps=$RUNS/eval/arc-8")
for variant in arc_generator_lr; do  # generator learning rate 1e-4, twice the discriminator's
  prestissimo posttrain arc --base "$BASE/dit/model" --data "$BASE/latents" --config "$HERE/$variant.json" \
    --out "$RUNS/$variant" $(resume "$RUNS/$variant")
  [ -f "$RUNS/eval/$variant-8/metrics.json" ] || prestissimo eval --model "$RUNS/$variant/model" --prompts "$TEST" \
    --limit 50 --steps 8 --sampler pingpong --cfg-scale 1 --seeds 2 --out "$RUNS/eval/$variant-8" --quiet
  rows+=("$variant, 8 steps=$RUNS/eval/$variant-8")
done
python benchmarks/eval_table.py --latency-runs 0 "${rows[@]}" | tee "$RUNS/experiments.md"
