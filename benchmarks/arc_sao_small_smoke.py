"""ARC on the Stable Audio Open Small architecture (random weights): seconds per generator and
discriminator update and peak memory, with and without activation checkpointing, on this machine.

This proves the code path a user with the released weights takes (same DiT, same Oobleck, same loop);
only the text encoder is the tiny local one, because t5-base cannot be downloaded here and ARC keeps
it frozen anyway. The latents are random: speed and memory do not depend on their values.

    python benchmarks/arc_sao_small_smoke.py [--batch-size 2] [--steps 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from prestissimo.models.factory import create_random_model
from prestissimo.models.presets import TINY_TEXT_ENCODER, preset
from prestissimo.posttrain.arc import ARCConfig, ARCTask, DiscriminatorConfig
from prestissimo.training.config import LoopConfig
from prestissimo.training.distributed import DistInfo
from prestissimo.training.loop import Trainer

PROMPTS = ["rain on a tin roof", "a slow piano melody", "a dog barking twice", "an engine starting",
           "a crowd applauding", "birdsong at dawn", "a synth bass line", "waves on a beach"]


class RandomLatents:
    def __init__(self, n: int, channels: int, frames: int):
        self.latents = torch.randn(n, channels, frames, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.latents)

    def get(self, index, rng):
        return {"latents": self.latents[index], "caption": PROMPTS[index % len(PROMPTS)],
                "seconds_start": 0.0, "seconds_total": 11.0}

    @staticmethod
    def collate(items):
        return {"latents": torch.stack([i["latents"] for i in items]), "caption": [i["caption"] for i in items],
                "seconds_start": [i["seconds_start"] for i in items],
                "seconds_total": [i["seconds_total"] for i in items]}


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def run(model_dir: Path, work: Path, checkpointing: bool, args: argparse.Namespace) -> dict[str, float]:
    cfg = ARCConfig(activation_checkpointing=checkpointing, discriminator=DiscriminatorConfig(),
                    loop=LoopConfig(max_steps=args.steps, batch_size=args.batch_size, checkpoint_every=10**6,
                                    log_every=1, ema_decay=0.9999, ema_warmup_power=0.75, device=args.device))
    task = ARCTask(cfg, work, model_dir)
    task.evaluate = lambda step, ema, logger: {}  # no sampling/export in a speed probe
    if args.device != "cpu":
        task.tta.to(args.device)
        task.disc.to(args.device)
    config = task.tta.config
    data = RandomLatents(8, config.dit.io_channels, config.latent_length)
    trainer = Trainer(task, data, cfg.loop, work, {}, DistInfo(), progress=False)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = {"generator": [], "discriminator": []}
    original = trainer._run_phase

    def timed(index, phase, batches):
        start = time.perf_counter()
        out = original(index, phase, batches)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times[phase.name].append(time.perf_counter() - start)
        return out

    trainer._run_phase = timed
    trainer.fit()
    row = {"generator s/update": min(times["generator"]), "discriminator s/update": min(times["discriminator"]),
           "peak RSS GiB": peak_rss_gib()}
    if args.device.startswith("cuda"):
        row["peak CUDA GiB"] = torch.cuda.max_memory_allocated() / 2**30
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4, help="loop steps per setting (G and D alternate)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", nargs=2, metavar=("MODEL_DIR", "CHECKPOINTING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one setting per process, so that its peak memory is its own
        model_dir, checkpointing = Path(args.child[0]), args.child[1] == "on"
        with tempfile.TemporaryDirectory() as work:
            print(json.dumps(run(model_dir, Path(work), checkpointing, args)))
        return

    config = preset("sao-small")
    for entry in config["model"]["conditioning"]["configs"]:
        if entry["type"] == "t5":
            entry["config"] = {"t5_model_name": TINY_TEXT_ENCODER, "max_length": 64}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = create_random_model(config, Path(tmp) / "sao_small", seed=0)
        from prestissimo.pipeline import TextToAudio

        counts = TextToAudio.from_pretrained(model_dir, load_text_encoder=False).parameter_counts()
        rows = {}
        for setting in ("off", "on"):
            out = subprocess.run([sys.executable, __file__, "--child", str(model_dir), setting, "--batch-size",
                                  str(args.batch_size), "--steps", str(args.steps), "--device", args.device],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"checkpointing {setting} failed:\n{out.stderr[-3000:]}")
            rows[setting] = json.loads(out.stdout.strip().splitlines()[-1])
    frames = config["sample_size"] // 2048
    print(f"SAO Small architecture, random weights: DiT {counts['dit'] / 1e6:.0f}M parameters, "
          f"latents {config['model']['io_channels']} x {frames}, batch {args.batch_size}, device {args.device}, "
          f"{torch.get_num_threads()} threads; best of {args.steps // 2} updates per phase")
    keys = list(rows["off"])
    print("| activation checkpointing | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for setting, row in rows.items():
        print(f"| {setting} | " + " | ".join(f"{row[k]:.2f}" for k in keys) + " |")
    for key in keys:
        print(f"{key}, checkpointing on / off: {rows['on'][key] / rows['off'][key]:.2f}x")


if __name__ == "__main__":
    main()
