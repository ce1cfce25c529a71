"""Entry points behind `prestissimo train ...`: build the task and dataset from a config, resume if
asked, train, export. Works the same under `torchrun --nproc-per-node N`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prestissimo.models.config import ModelConfig
from prestissimo.training.autoencoder import AETrainConfig, AutoencoderTask
from prestissimo.training.config import LoopConfig, to_dict
from prestissimo.training.dit import DiTTask, DiTTrainConfig, prepare_init_dir
from prestissimo.training.distributed import DistInfo, barrier, init_distributed, shutdown_distributed
from prestissimo.training.loop import Dataset, Trainer, TrainTask

if TYPE_CHECKING:
    from prestissimo.data.latents import LatentDataset
    from prestissimo.training.envelope_prior import EnvelopePriorTrainConfig

log = logging.getLogger(__name__)


class RunExists(ValueError):
    """The run directory already has checkpoints and --resume was not given."""


def check_run_dir(run_dir: Path, resume: bool) -> None:
    if not resume and (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
        raise RunExists(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --out")


def fit_task(task: TrainTask, dataset: Dataset, loop: LoopConfig, run_dir: Path, config: Any, info: DistInfo, resume: bool,
         progress: bool) -> None:
    """Build the trainer, resume when asked and there is a checkpoint, train."""
    trainer = Trainer(task, dataset, loop, run_dir, to_dict(config), info, progress=progress)
    if resume and not trainer.resume():
        log.info("no checkpoint in %s yet: starting from step 0", run_dir)
    trainer.fit()


def train_autoencoder(cfg: AETrainConfig, manifest: str | Path, run_dir: str | Path, resume: bool = False,
                      progress: bool = True) -> Path:
    """Train an Oobleck autoencoder on a manifest's audio; returns the exported autoencoder dir."""
    import torch

    from prestissimo.data.datasets import AudioDataset, AudioSpec
    from prestissimo.data.manifest import read_manifest

    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume)
    cfg.loop.validate()
    info = init_distributed(cfg.loop.device)
    try:
        _, sample_rate = cfg.architecture()
        task = AutoencoderTask(cfg, run_dir)
        entries = read_manifest(manifest)
        spec = AudioSpec(sample_rate, cfg.audio_channels, task.crop_samples / sample_rate)
        dataset = AudioDataset(entries, spec, random_crop=True)
        if len(dataset) == 0:
            raise ValueError(f"no usable audio in {manifest} (skipped: {dict(dataset.skipped)})")
        eval_set = AudioDataset(entries[: cfg.eval_clips], AudioSpec(sample_rate, cfg.audio_channels, 2.0),
                                random_crop=False)
        items = [eval_set.get(i, None) for i in range(len(eval_set))]
        items = [i for i in items if i is not None]
        task.eval_audio = torch.stack([i["audio"] for i in items]) if items else None
        fit_task(task, dataset, cfg.loop, run_dir, cfg, info, resume, progress)
        if dataset.skipped:
            log.warning("skipped during training: %s", dict(dataset.skipped))
        return run_dir / "model"
    finally:
        shutdown_distributed()


def train_dit(cfg: DiTTrainConfig, latents: str | Path, run_dir: str | Path, resume: bool = False,
              progress: bool = True) -> Path:
    """Train a base DiT on a latent folder from `prestissimo encode`; returns the exported model dir."""
    from prestissimo.data.latents import LatentDataset

    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume)
    cfg.loop.validate()
    info = init_distributed(cfg.loop.device)
    try:
        dataset = LatentDataset(latents)
        cfg.validate()
        if dataset.envelope is not None:
            dataset.envelope.gain = cfg.envelope_gain
        if info.is_main:
            prepare_init_dir(cfg, run_dir, latent_scale=dataset.scale, envelope=dataset.envelope)
        barrier(info)
        task = DiTTask(cfg, run_dir, run_dir / "init")
        check_latent_channels(dataset, task.config, latents)
        dataset.frames = task.config.latent_length  # crop the cached latents to the model's window
        fit_task(task, dataset, cfg.loop, run_dir, cfg, info, resume, progress)
        return run_dir / "model"
    finally:
        shutdown_distributed()


def check_latent_channels(dataset: "LatentDataset", model_cfg: ModelConfig, folder: str | Path) -> None:
    """Refuse a latent cache whose channels (latents, envelopes) are not what the model's DiT reads;
    the cache's envelopes are then normalised with the model's statistics."""
    has, wants = dataset.envelope is not None, model_cfg.envelope is not None
    if has != wants or dataset.channels != model_cfg.dit.io_channels:
        def describe(latent: int, env: int) -> str:
            return f"{latent} latent" + (f" + {env} envelope" if env else "") + " channels"
        cache = describe(int(dataset.index["latent_dim"]), dataset.envelope.channels if has else 0)
        model = describe(model_cfg.autoencoder.latent_dim, model_cfg.envelope_channels)
        hint = ("re-encode with `prestissimo encode --envelopes`" if wants and not has else
                "re-encode without --envelopes" if has and not wants else "encode with the model's autoencoder")
        raise ValueError(f"{folder} holds {cache}; the model's DiT reads {model}: {hint}")
    if model_cfg.envelope is not None:
        dataset.envelope = model_cfg.envelope


def train_envelope_prior(cfg: "EnvelopePriorTrainConfig", base: str | Path, latents: str | Path, run_dir: str | Path,
                         resume: bool = False, progress: bool = True) -> Path:
    """Train an envelope prior for ``base`` (a model whose DiT generates envelope channels) on a latent
    cache with envelopes; returns the exported model dir (``base`` with the prior attached)."""
    from prestissimo.data.latents import LatentDataset
    from prestissimo.models.loading import resolve_model_dir
    from prestissimo.training.envelope_prior import EnvelopePriorTask

    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume)
    cfg.validate()
    cfg.loop.validate()
    info = init_distributed(cfg.loop.device)
    try:
        dataset = LatentDataset(latents)
        task = EnvelopePriorTask(cfg, resolve_model_dir(base), run_dir)
        check_latent_channels(dataset, task.tta.config, latents)
        dataset.frames = task.tta.config.latent_length
        fit_task(task, dataset, cfg.loop, run_dir, cfg, info, resume, progress)
        return run_dir / "model"
    finally:
        shutdown_distributed()
