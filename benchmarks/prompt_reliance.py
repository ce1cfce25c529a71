"""How much a trained DiT relies on its prompt: its denoising loss on cached latents with the right
prompts, with mismatched prompts (each item given another item's), and unconditionally (the null
conditioning classifier-free guidance uses), at a few noise levels.

A model that follows prompts has a clearly lower loss with the right prompts than with mismatched
ones; a model that ignores them has the same loss in all three columns. `gap` is
(mismatched - right) / mismatched. Noise and items are fixed by seeds, so two models are compared
on the same inputs.

    python benchmarks/prompt_reliance.py LATENTS_DIR MODEL_DIR [MODEL_DIR ...] [--items 48]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from prestissimo.data.latents import LatentDataset
from prestissimo.pipeline import TextToAudio
from prestissimo.sampling import null_conditioning
from prestissimo.training.diffusion import diffusion_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("latents", type=Path)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--items", type=int, default=48, help="latents spread evenly over the cache")
    parser.add_argument("--times", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.9])
    args = parser.parse_args()

    print("| model | t | loss, right prompts | mismatched prompts | unconditional | gap |")
    print("|---|---:|---:|---:|---:|---:|")
    for model_dir in args.models:
        tta = TextToAudio.from_pretrained(model_dir).eval()
        data = LatentDataset(args.latents, frames=tta.config.latent_length)
        rng = np.random.default_rng(0)
        items = [data.get(int(i), rng) for i in np.linspace(0, len(data) - 1, args.items).astype(int)]
        x0 = torch.stack([item["latents"] for item in items])
        captions = [item["caption"] for item in items]
        seconds = [item["seconds_total"] for item in items]
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            right = tta.conditioning(captions, seconds)
            conditions = {"right": right, "mismatched": tta.conditioning(captions[1:] + captions[:1], seconds),
                          "unconditional": null_conditioning(right)}
            for t in args.times:
                times = torch.full((len(items),), t)
                loss = {name: float(diffusion_loss(tta.model, x0, noise, times, cond, tta.config.objective).mean())
                        for name, cond in conditions.items()}
                gap = (loss["mismatched"] - loss["right"]) / loss["mismatched"]
                print(f"| {model_dir} | {t:.1f} | {loss['right']:.4f} | {loss['mismatched']:.4f} | "
                      f"{loss['unconditional']:.4f} | {100 * gap:.1f}% |", flush=True)


if __name__ == "__main__":
    main()
