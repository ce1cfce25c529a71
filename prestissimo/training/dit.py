"""Base text-to-audio DiT training (rectified flow, v-diffusion or EDM) on pre-encoded latents."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prestissimo.models.autoencoder_io import load_autoencoder, read_autoencoder_config
from prestissimo.models.config import EnvelopeSpec, ModelConfig
from prestissimo.models.factory import create_random_model
from prestissimo.models.loading import (ModelLoadError, check_state_dict, normalize_keys, read_state_dict,
                                        resolve_model_dir)
from prestissimo.models.presets import preset
from prestissimo.pipeline import TextToAudio
from prestissimo.training.config import DEFAULT_EVAL_PROMPTS, LoopConfig, OptimizerConfig
from prestissimo.training.diffusion import (NOISE_DISTRIBUTIONS, cfg_dropout, diffusion_loss, edm_noise_levels,
                                            sample_noise_levels)
from prestissimo.training.loop import Batch, Phase, RunLogger

OBJECTIVES = ("rectified_flow", "v", "edm")


@dataclass
class NoiseConfig:
    """Training noise levels: a distribution over t (rectified flow, v) or EDM's log-normal sigma."""

    distribution: str = "logit_normal"
    mean: float = 0.0
    std: float = 1.0
    edm_p_mean: float = -1.2
    edm_p_std: float = 1.2


@dataclass
class EvalConfig:
    prompts: list[str] = field(default_factory=lambda: list(DEFAULT_EVAL_PROMPTS))
    steps: int = 50
    cfg_scale: float = 4.0
    seed: int = 0


@dataclass
class DiTTrainConfig:
    """Everything `prestissimo train dit` needs; saved with every checkpoint."""

    model: Any = "tiny"  # preset name or model_config dict (its autoencoder is replaced by `autoencoder`)
    autoencoder: str | None = None  # directory exported by `prestissimo train autoencoder`
    # A trained model directory whose DiT and conditioner weights start this run instead of random ones:
    # continue training with a fresh learning-rate schedule, or fine-tune on other data. Its architecture
    # must be the one this config builds (mismatched keys are named); the autoencoder stays `autoencoder`'s.
    init_from: str | None = None
    # Key prefixes this config adds to init_from's architecture (say a position embedding switched on):
    # they keep their fresh initialisation. Any other key init_from lacks is still an error.
    init_new_keys: list[str] = field(default_factory=list)
    # Parameter-name prefixes (as in the model's state dict, e.g. "model.model.transformer.pos_emb.scale")
    # that keep their initial values. Adam moves a lone scalar by about the learning rate every step
    # whatever its gradient's size, so the position embedding's scale, which starts out as noise to
    # every token, is driven to ~0 within a few hundred steps, long before the model can use it.
    frozen_keys: list[str] = field(default_factory=list)
    # Standard deviation of the envelope channels (if the latent cache has them) as the DiT sees them:
    # EnvelopeSpec.gain, stored in the model config.
    envelope_gain: float = 1.0
    objective: str = "rectified_flow"
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    cfg_dropout: float = 0.1
    eval: EvalConfig = field(default_factory=EvalConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    optim: OptimizerConfig = field(default_factory=OptimizerConfig)

    def validate(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.noise.distribution not in NOISE_DISTRIBUTIONS:
            raise ValueError(f"noise.distribution must be one of {NOISE_DISTRIBUTIONS}")
        if not self.envelope_gain > 0:
            raise ValueError(f"envelope_gain must be positive, got {self.envelope_gain}")
        if not 0.0 <= self.cfg_dropout < 1.0:
            raise ValueError("cfg_dropout must be in [0, 1)")
        if self.init_new_keys and self.init_from is None:
            raise ValueError("init_new_keys names keys added to init_from's weights: set init_from too")
        if not all(isinstance(p, str) and p for p in self.init_new_keys):
            raise ValueError(f"init_new_keys must be non-empty key prefixes, got {self.init_new_keys!r}")
        if not all(isinstance(p, str) and p for p in self.frozen_keys):
            raise ValueError(f"frozen_keys must be non-empty parameter-name prefixes, got {self.frozen_keys!r}")


def build_model_config(cfg: DiTTrainConfig, latent_scale: float | None = None,
                       envelope: EnvelopeSpec | None = None) -> dict[str, Any]:
    """The model_config.json of the model being trained: the chosen architecture, the trained
    autoencoder spliced in as its pretransform, the training objective and sampling defaults; with
    ``envelope`` (a latent cache's) the DiT also generates the envelope channels."""
    d = preset(cfg.model) if isinstance(cfg.model, str) else copy.deepcopy(cfg.model)
    if cfg.autoencoder is not None:
        ae_cfg, sample_rate, _ = read_autoencoder_config(cfg.autoencoder)
        if latent_scale is not None:
            ae_cfg.scale = latent_scale
        d["sample_rate"] = sample_rate
        d["audio_channels"] = ae_cfg.audio_channels
        d["model"]["pretransform"] = ae_cfg.to_pretransform(sample_rate)
        d["model"]["diffusion"]["config"]["io_channels"] = ae_cfg.latent_dim + (envelope.channels if envelope else 0)
        d["model"]["io_channels"] = ae_cfg.latent_dim
        ratio = ae_cfg.downsampling_ratio
        d["sample_size"] = max(ratio, d["sample_size"] // ratio * ratio)
    d["model"]["diffusion"]["diffusion_objective"] = cfg.objective
    ours = d.setdefault("prestissimo", {})
    ours.pop("sampling", None)  # objective defaults (from_dict) unless the recipe sets them
    ours.pop("envelope", None)
    if envelope is not None:
        ours["envelope"] = envelope.to_dict()
    return d


def prepare_init_dir(cfg: DiTTrainConfig, run_dir: Path, latent_scale: float | None = None,
                     envelope: EnvelopeSpec | None = None) -> Path:
    """RUN/init: the untrained model (or ``init_from``'s weights) with the trained autoencoder (the
    evaluation baseline and the starting point). Written once, by one process, before training starts."""
    init_dir = run_dir / "init"
    if not (init_dir / "model.safetensors").is_file():
        create_random_model(build_model_config(cfg, latent_scale, envelope), init_dir, seed=cfg.loop.seed)
        if cfg.autoencoder is not None or cfg.init_from is not None:
            model = TextToAudio.from_pretrained(init_dir)
            if cfg.init_from is not None:
                load_trained_weights(model, cfg.init_from, new_keys=tuple(cfg.init_new_keys))
            if cfg.autoencoder is not None:
                ae, _ = load_autoencoder(cfg.autoencoder)
                model.pretransform.model.load_state_dict(ae.state_dict())
            model.save_pretrained(init_dir)
    return init_dir


def load_trained_weights(model: TextToAudio, source: str | Path, new_keys: tuple[str, ...] = ()) -> None:
    """Copy a trained model's DiT and conditioner weights into ``model`` (its autoencoder is left alone);
    keys starting with one of ``new_keys`` may be absent from ``source`` and keep their initial values.
    ModelLoadError names the keys that do not fit."""
    given = {k: v for k, v in normalize_keys(read_state_dict(resolve_model_dir(source))).items()
             if not k.startswith("pretransform.")}
    state = model.state_dict()
    unmatched = [p for p in new_keys if not any(k.startswith(p) for k in state)]
    if unmatched:
        raise ModelLoadError(f"init_new_keys {unmatched} name no key of the model being trained")
    expected = {k: v for k, v in state.items() if not k.startswith("pretransform.")
                and not (k not in given and k.startswith(new_keys))}
    try:
        check_state_dict(expected, given)
    except ModelLoadError as e:
        raise ModelLoadError(f"init_from {source}: {e}") from None
    model.load_state_dict(given, strict=False)


class DiTTask:
    """Train the DiT (and the conditioners' trainable projections) of a TextToAudio on latents."""

    def __init__(self, cfg: DiTTrainConfig, run_dir: Path, init_dir: Path):
        cfg.validate()
        self.cfg = cfg
        self.run_dir = run_dir
        self.tta = TextToAudio.from_pretrained(init_dir, device=cfg.loop.device)
        self.tta.model.train().requires_grad_(True)
        self.tta.conditioner.train().requires_grad_(True)  # projections / number embedders; text encoders stay frozen
        self.tta.pretransform.eval().requires_grad_(False)
        frozen = tuple(cfg.frozen_keys)
        names = [n for n, _ in self.tta.named_parameters()]
        unmatched = [k for k in frozen if not any(n.startswith(k) for n in names)]
        if unmatched:
            raise ValueError(f"frozen_keys {unmatched} name no parameter of the model")
        for name, param in self.tta.named_parameters():
            if name.startswith(frozen):
                param.requires_grad_(False)
        self.trainable = [p for p in list(self.tta.model.parameters()) + list(self.tta.conditioner.parameters())
                          if p.requires_grad]

    @property
    def config(self) -> ModelConfig:
        return self.tta.config

    def modules(self) -> dict[str, nn.Module]:
        return {"dit": self.tta.model, "conditioner": self.tta.conditioner}

    def ema_targets(self) -> dict[str, nn.Module]:
        return self.modules()

    def phases(self) -> list[Phase]:
        return [Phase("diffusion", self.trainable, self.loss, self.cfg.optim)]

    def noise_levels(self, u: torch.Tensor) -> torch.Tensor:
        n = self.cfg.noise
        if self.cfg.objective == "edm":
            return edm_noise_levels(u, n.edm_p_mean, n.edm_p_std)
        return sample_noise_levels(u, n.distribution, n.mean, n.std, objective=self.cfg.objective)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        x0 = batch.data["latents"].to(self.tta.device)
        cond = self.tta.conditioning(batch.data["caption"], batch.data["seconds_total"], batch.data["seconds_start"])
        cond = cfg_dropout(cond, batch.rand(stream=2) < self.cfg.cfg_dropout)
        noise = batch.randn(x0.shape[1:], stream=0, device=x0.device)
        t = self.noise_levels(batch.rand(stream=1))
        losses = diffusion_loss(self.tta.model, x0, noise, t, cond, self.cfg.objective, self.config.edm_sigma_data)
        loss = losses.mean()
        return loss, {"loss": float(loss.detach())}

    def export(self, ema: dict[str, nn.Module], out_dir: Path) -> Path:
        """A model directory (EMA weights) that TextToAudio.from_pretrained loads."""
        return with_ema_weights(self.tta, ema["dit"], ema["conditioner"]).save_pretrained(out_dir)

    def evaluate(self, step: int, ema: dict[str, nn.Module], logger: RunLogger) -> dict[str, float]:
        model = TextToAudio.from_pretrained(self.export(ema, self.run_dir / "model"))
        e = self.cfg.eval
        audio = model.generate(e.prompts, steps=e.steps, cfg_scale=e.cfg_scale, seed=e.seed)
        log_samples(model, e.prompts, audio, self.run_dir / "samples" / f"step_{step:08d}", step, logger)
        return {}


def with_ema_weights(tta: TextToAudio, denoiser: nn.Module, conditioner: nn.Module) -> TextToAudio:
    """A copy of ``tta`` carrying the EMA weights of its denoiser and conditioner (what runs export)."""
    model = copy.deepcopy(tta).cpu()
    model.model.load_state_dict(denoiser.state_dict())
    model.conditioner.load_state_dict(conditioner.state_dict())
    return model


def log_samples(model: TextToAudio, prompts: list[str], audio: torch.Tensor, folder: Path, step: int,
                logger: RunLogger) -> None:
    """Evaluation samples as WAVs + a spectrogram grid + prompts.json in ``folder``, and in TensorBoard."""
    from prestissimo.evaluation.plots import spectrogram_grid

    for i, clip in enumerate(audio):
        model.save_wav(clip, folder / f"{i}.wav")
        logger.audio(step, f"sample/{i}", clip, model.sample_rate)
    png = spectrogram_grid([c.numpy() for c in audio], model.sample_rate, prompts, folder / "spectrograms.png")
    logger.image(step, "spectrograms", png)
    (folder / "prompts.json").write_text(json.dumps(prompts, indent=2))
