#!/usr/bin/env bash
# ARC post-training of the synthbench base model, and the comparison table of docs/arc.md.
# Needs the base model: bash recipes/synthbench_base/run.sh first. Every stage resumes.
#   bash recipes/synthbench_arc/run.sh            (from the repository root)
set -euo pipefail
HERE=recipes/synthbench_arc
BASE=${BASE:-runs/synthbench_base}
RUNS=${RUNS:-runs/synthbench_arc}
TEST="$BASE/data/test/manifest.jsonl"
mkdir -p "$RUNS"

resume() { [ -d "$1/checkpoints" ] && echo --resume || true; }
for variant in arc arc_no_contrastive; do
  prestissimo posttrain arc --base "$BASE/dit/model" --data "$BASE/latents" --config "$HERE/$variant.json" \
    --out "$RUNS/$variant" $(resume "$RUNS/$variant")
done

evaluate() {  # name model steps sampler cfg
  [ -f "$RUNS/eval/$1/metrics.json" ] || prestissimo eval --model "$2" --prompts "$TEST" --limit 50 --steps "$3" \
    --sampler "$4" --cfg-scale "$5" --seeds 2 --out "$RUNS/eval/$1" --quiet
}
evaluate base-100 "$BASE/dit/model" 100 euler 4
evaluate base-50 "$BASE/dit/model" 50 euler 4
evaluate base-8 "$BASE/dit/model" 8 euler 4
evaluate base-4 "$BASE/dit/model" 4 euler 4
for steps in 8 4 2 1; do evaluate arc-$steps "$RUNS/arc/model" $steps pingpong 1; done
evaluate arc-nc-8 "$RUNS/arc_no_contrastive/model" 8 pingpong 1
# The base's CFG scale: the table's base rows use 4; this sweep at 50 steps shows whether another is better.
for cfg in 1 2 7; do evaluate base-50-cfg$cfg "$BASE/dit/model" 50 euler $cfg; done

python benchmarks/eval_table.py "base, 100 steps=$RUNS/eval/base-100" "base, 50 steps=$RUNS/eval/base-50" \
  "base, 8 steps=$RUNS/eval/base-8" "base, 4 steps=$RUNS/eval/base-4" "ARC, 8 steps=$RUNS/eval/arc-8" \
  "ARC, 4 steps=$RUNS/eval/arc-4" "ARC, 2 steps=$RUNS/eval/arc-2" "ARC, 1 step=$RUNS/eval/arc-1" \
  "ARC without contrastive, 8 steps=$RUNS/eval/arc-nc-8" | tee "$RUNS/table.md"

python benchmarks/eval_table.py --latency-runs 0 "base, 50 steps, CFG 1=$RUNS/eval/base-50-cfg1" \
  "base, 50 steps, CFG 2=$RUNS/eval/base-50-cfg2" "base, 50 steps, CFG 4=$RUNS/eval/base-50" \
  "base, 50 steps, CFG 7=$RUNS/eval/base-50-cfg7" | tee "$RUNS/cfg_sweep.md"
