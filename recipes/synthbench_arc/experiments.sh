#!/usr/bin/env bash
# Attempts to close the gap between ARC and the base (docs/arc.md, "Variants tried"): each variant is the
# ARC recipe with one change, trained and scored like the table's "ARC, 8 steps" row. Run after run.sh
# (its rows are included when their scores exist).
#   bash recipes/synthbench_arc/experiments.sh            (from the repository root; all variants)
#   VARIANTS=arc_long_warmup bash recipes/synthbench_arc/experiments.sh     (only the ones named)
set -euo pipefail
HERE=recipes/synthbench_arc
BASE=${BASE:-runs/synthbench_base}
RUNS=${RUNS:-runs/synthbench_arc}
VARIANTS=${VARIANTS:-arc_generator_lr arc_long_warmup}
TEST="$BASE/data/test/manifest.jsonl"

resume() { [ -d "$1/checkpoints" ] && echo --resume || true; }
evaluate() {  # name model steps sampler cfg: scored as run.sh scores its rows
  [ -f "$RUNS/eval/$1/metrics.json" ] || prestissimo eval --model "$2" --prompts "$TEST" --limit 50 --steps "$3" \
    --sampler "$4" --cfg-scale "$5" --seeds 2 --out "$RUNS/eval/$1" --quiet
}
mkdir -p "$RUNS"
# The base's reference rows, scored as run.sh scores them: the variants are compared with the base they start from.
evaluate base-100 "$BASE/dit/model" 100 euler 4
evaluate base-8 "$BASE/dit/model" 8 euler 4
calls() { [ "$1" = 1 ] && echo "1 step" || echo "$1 steps"; }
rows=("base, 100 steps=$RUNS/eval/base-100" "base, 8 steps=$RUNS/eval/base-8")
if [ -f "$RUNS/eval/arc-8/metrics.json" ]; then rows+=("ARC (arc.json), 8 steps=$RUNS/eval/arc-8"); fi

# 1. Generator learning rate 1e-4, twice the discriminator's.
arc_generator_lr() {
  local variant=arc_generator_lr
  prestissimo posttrain arc --base "$BASE/dit/model" --data "$BASE/latents" --config "$HERE/$variant.json" \
    --out "$RUNS/$variant" $(resume "$RUNS/$variant")
  evaluate $variant-8 "$RUNS/$variant/model" 8 pingpong 1
  rows+=("$variant, 8 steps=$RUNS/eval/$variant-8")
}

# 2. A 500-step ODE warm-up (arc.json: 100) onto the base's guided 8-step trajectories, each prompt's
#    trajectory computed once and reused (ode_warmup.trajectory_variants), then the same 800 ARC steps.
#    The warm-up alone is scored too: it is trained as a run that stops at step 500, which the full
#    run then resumes (constant learning rates, so this equals one uninterrupted run).
arc_long_warmup() {
  local variant=arc_long_warmup warm="$RUNS/arc_long_warmup-warmup-only"
  if [ ! -d "$RUNS/$variant/checkpoints" ]; then
    python -c 'import json, sys; c = json.load(open(sys.argv[1])); c["loop"]["max_steps"] = c["ode_warmup"]["steps"]
json.dump(c, open(sys.argv[2], "w"), indent=2)' "$HERE/$variant.json" "$RUNS/$variant-warmup.json"
    prestissimo posttrain arc --base "$BASE/dit/model" --data "$BASE/latents" --config "$RUNS/$variant-warmup.json" \
      --out "$warm" $(resume "$warm")
    evaluate $variant-warmup-only-8 "$warm/model" 8 pingpong 1
    rm -rf "$RUNS/$variant.partial" && cp -r "$warm" "$RUNS/$variant.partial" && mv "$RUNS/$variant.partial" "$RUNS/$variant"
  fi
  prestissimo posttrain arc --base "$BASE/dit/model" --data "$BASE/latents" --config "$HERE/$variant.json" \
    --out "$RUNS/$variant" --resume
  for steps in 8 4 2 1; do
    evaluate $variant-warmup-only-$steps "$warm/model" $steps pingpong 1
    rows+=("ODE warm-up only (500 steps), $(calls $steps)=$RUNS/eval/$variant-warmup-only-$steps")
  done
  for steps in 8 4 2 1; do
    evaluate $variant-$steps "$RUNS/$variant/model" $steps pingpong 1
    rows+=("$variant (warm-up + 800 ARC steps), $(calls $steps)=$RUNS/eval/$variant-$steps")
  done
}

for variant in $VARIANTS; do "$variant"; done
python benchmarks/eval_table.py --latency-runs 0 "${rows[@]}" | tee "$RUNS/experiments.md"
