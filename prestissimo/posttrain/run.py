"""Entry point behind `prestissimo posttrain arc`: latents (cached once if given a manifest), the task,
resume, train, export. Works the same under `torchrun --nproc-per-node N`."""

from __future__ import annotations

from pathlib import Path

from prestissimo.posttrain.arc import ARCConfig, ARCTask
from prestissimo.training.distributed import barrier, init_distributed, shutdown_distributed
from prestissimo.training.run import check_latent_channels, check_run_dir, fit_task


def _latents_for(data: Path, base: str | Path, run_dir: Path, frames: int, rank0: bool) -> Path:
    """A latent folder as is; a manifest is encoded once with the base model's autoencoder into
    RUN/latents (kept, so a resumed run does not encode again)."""
    if data.is_dir():
        return data
    target = run_dir / "latents"
    if rank0 and not (target / "latents.json").is_file():
        from prestissimo.data.latents import encode_dataset
        from prestissimo.data.manifest import read_manifest
        from prestissimo.pipeline import TextToAudio

        base_model = TextToAudio.from_pretrained(base, load_text_encoder=False)
        ae = base_model.pretransform.model
        seconds = frames * ae.downsampling_ratio / base_model.sample_rate
        encode_dataset(ae, base_model.sample_rate, read_manifest(data), target, seconds,
                       envelope=base_model.config.envelope)
    return target


def posttrain_arc(cfg: ARCConfig, base: str | Path, data: str | Path, run_dir: str | Path, resume: bool = False,
                  progress: bool = True) -> Path:
    """ARC-post-train the rectified-flow model in ``base`` on a latent folder or a manifest; returns
    the exported model directory (ping-pong, no CFG by default)."""
    from prestissimo.data.latents import LatentDataset

    run_dir, data = Path(run_dir), Path(data)
    check_run_dir(run_dir, resume)
    cfg.validate()
    cfg.loop.validate()
    info = init_distributed(cfg.loop.device)
    try:
        task = ARCTask(cfg, run_dir, base)
        model_cfg = task.tta.config
        latents = _latents_for(data, base, run_dir, model_cfg.latent_length, info.is_main)
        barrier(info)
        dataset = LatentDataset(latents, frames=model_cfg.latent_length)
        check_latent_channels(dataset, model_cfg, latents)
        # The cache stores raw autoencoder means; the base model reads them divided by its own scale.
        dataset.scale = model_cfg.autoencoder.scale
        fit_task(task, dataset, cfg.loop, run_dir, cfg, info, resume, progress)
        return run_dir / "model"
    finally:
        shutdown_distributed()
