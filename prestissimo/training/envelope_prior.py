"""Train an envelope prior (models/envelope_prior.py) for a model whose DiT generates envelope channels.

The base model stays frozen: the prior reads its prompt conditioner and the envelope channels of a
latent cache, normalised with the base's statistics. The export is the base model with the prior
attached, so a prior trained beside the DiT's post-training can be attached to the post-trained model
afterwards: resume the finished run with the other ``--base`` (the envelope statistics and the text
conditioner must be the same; the run checks).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from prestissimo.models.config import ConfigError, DiTConfig, EnvelopePriorSpec
from prestissimo.models.envelope_prior import EnvelopePrior, pool_frames
from prestissimo.pipeline import TextToAudio, masked_mean
from prestissimo.training.config import DEFAULT_EVAL_PROMPTS, LoopConfig, OptimizerConfig
from prestissimo.training.diffusion import NOISE_DISTRIBUTIONS, sample_noise_levels
from prestissimo.training.dit import log_samples
from prestissimo.training.loop import Batch, Phase, RunLogger

#: Adam moves a lone scalar by about the learning rate every step whatever its gradient: the sinusoidal
#: position embedding's scale would be driven to ~0 before the model can use it (DiTTrainConfig.frozen_keys).
FROZEN = ("net.transformer.pos_emb.scale",)


@dataclass
class PriorArchitecture:
    embed_dim: int = 128
    depth: int = 4
    num_heads: int = 4
    patch_size: int = 2
    pool: int = 5  # envelope frames averaged into one prior frame


@dataclass
class PriorEvalConfig:
    """Samples of the exported model (base + prior) at its own default sampling."""

    prompts: list[str] = field(default_factory=lambda: list(DEFAULT_EVAL_PROMPTS))
    seed: int = 0


@dataclass
class EnvelopePriorTrainConfig:
    """Everything `prestissimo train envelope-prior` needs; saved with every checkpoint."""

    architecture: PriorArchitecture = field(default_factory=PriorArchitecture)
    noise: str = "uniform"  # distribution of training times t (training.diffusion.NOISE_DISTRIBUTIONS)
    cfg_dropout: float = 0.1
    sampling_steps: int = 30  # the prior's Euler steps at generation (stored in the model config)
    sampling_cfg_scale: float = 4.0
    eval: PriorEvalConfig = field(default_factory=PriorEvalConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    optim: OptimizerConfig = field(default_factory=OptimizerConfig)

    def validate(self) -> None:
        if self.noise not in NOISE_DISTRIBUTIONS:
            raise ValueError(f"noise must be one of {NOISE_DISTRIBUTIONS}, got {self.noise!r}")
        if not 0.0 <= self.cfg_dropout < 1.0:
            raise ValueError("cfg_dropout must be in [0, 1)")
        if self.sampling_steps < 1:
            raise ValueError("sampling_steps must be >= 1")


def prior_spec(cfg: EnvelopePriorTrainConfig, tta: TextToAudio) -> EnvelopePriorSpec:
    """The prior's spec for ``tta``: conditioned on its first text conditioner; ConfigError if it cannot be."""
    config = tta.config
    if config.envelope is None:
        raise ConfigError("the base model's DiT generates no envelope channels: train it on a latent cache "
                          "encoded with `prestissimo encode --envelopes`")
    text = [c.id for c in config.conditioners if c.type != "number"]
    if not text:
        raise ConfigError("the base model has no text conditioner for an envelope prior to read")
    a = cfg.architecture
    dit = DiTConfig(io_channels=config.envelope.channels, embed_dim=a.embed_dim, depth=a.depth, num_heads=a.num_heads,
                    cond_token_dim=config.cond_dim, global_cond_dim=config.cond_dim, global_cond_type="adaLN",
                    qk_norm="ln", patch_size=a.patch_size, sinusoidal_pos_emb=True)
    # Through from_dict, so the architecture gets the checks a loaded model config gets.
    spec = EnvelopePriorSpec.from_dict({"dit": dit.to_dict(), "pool": a.pool, "prompt_id": text[0],
                                        "steps": cfg.sampling_steps, "cfg_scale": cfg.sampling_cfg_scale})
    dataclasses.replace(config, envelope_prior=spec).validate()
    return spec


class EnvelopePriorTask:
    """Train only the prior; the base model (DiT, autoencoder, conditioners) is frozen."""

    def __init__(self, cfg: EnvelopePriorTrainConfig, base_dir: str | Path, run_dir: Path):
        cfg.validate()
        self.cfg = cfg
        self.run_dir = run_dir
        self.tta = TextToAudio.from_pretrained(base_dir, device=cfg.loop.device).requires_grad_(False)
        self.spec = prior_spec(cfg, self.tta)
        self.check_base(run_dir / "base.json")
        torch.manual_seed(cfg.loop.seed)
        self.prior = EnvelopePrior(self.spec).to(cfg.loop.device).train()
        for name, p in self.prior.named_parameters():
            p.requires_grad_(not name.startswith(FROZEN))

    def check_base(self, path: Path) -> None:
        """What the prior's inputs depend on, recorded on the first run and compared on every later one."""
        config = self.tta.config
        text = self.tta.conditioner.conditioners[self.spec.prompt_id]
        proj = getattr(text, "proj_out", None)
        facts = {"envelope": config.envelope.to_dict(), "prompt": config.conditioner(self.spec.prompt_id).config,
                 "prompt_projection": None if not isinstance(proj, nn.Linear) else
                 round(float(proj.weight.double().sum()), 6)}
        if path.is_file():
            before = json.loads(path.read_text())
            changed = sorted(k for k in facts if before.get(k) != facts[k])
            if changed:
                raise ValueError(f"this run's prior was trained for a base model with other {', '.join(changed)} "
                                 f"({path}): it cannot be attached to this one")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(facts, indent=2) + "\n")

    def modules(self) -> dict[str, nn.Module]:
        return {"envelope_prior": self.prior}

    def ema_targets(self) -> dict[str, nn.Module]:
        return self.modules()

    def phases(self) -> list[Phase]:
        trainable = [p for p in self.prior.parameters() if p.requires_grad]
        return [Phase("prior", trainable, self.loss, self.cfg.optim)]

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        latents = batch.data["latents"].to(self.tta.device)
        x0 = pool_frames(latents[:, self.tta.config.autoencoder.latent_dim:], self.spec.pool)
        with torch.no_grad():
            emb, mask = self.tta.conditioner.conditioners[self.spec.prompt_id](batch.data["caption"], self.tta.device)
            pooled = masked_mean(emb, mask)
        keep = (batch.rand(stream=2) >= self.cfg.cfg_dropout).to(emb.dtype)
        emb, pooled = emb * keep.view(-1, 1, 1), pooled * keep.view(-1, 1)
        noise = batch.randn(x0.shape[1:], stream=0, device=x0.device)
        t = sample_noise_levels(batch.rand(stream=1), self.cfg.noise)
        loss = self.prior.loss(x0, noise, t, emb, pooled).mean()
        return loss, {"loss": float(loss.detach())}

    def export(self, ema: dict[str, nn.Module], out_dir: Path) -> Path:
        """The base model with the (EMA) prior attached: a model directory any loader reads."""
        model = copy.deepcopy(self.tta).cpu()
        model.config = dataclasses.replace(model.config, envelope_prior=self.spec)
        model.envelope_prior = copy.deepcopy(ema["envelope_prior"]).cpu().eval()
        return model.save_pretrained(out_dir)

    def evaluate(self, step: int, ema: dict[str, nn.Module], logger: RunLogger) -> dict[str, float]:
        model = TextToAudio.from_pretrained(self.export(ema, self.run_dir / "model"))
        e = self.cfg.eval
        audio = model.generate(e.prompts, seed=e.seed)
        log_samples(model, e.prompts, audio, self.run_dir / "samples" / f"step_{step:08d}", step, logger)
        return {}
