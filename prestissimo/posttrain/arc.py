"""ARC post-training (adversarial relativistic-contrastive; arXiv 2505.08175, ../shared/docs/algorithms.md §2).

A rectified-flow model becomes a few-step generator without a teacher and without CFG:

* the generator G is the base model read as a denoiser, x0_hat = x_t - t v(x_t, t, c);
* the discriminator D is a copy of the base DiT read at one hidden layer plus a small conv head that
  scores every latent position; it judges re-noised latents, real and generated, with the *same*
  noise and level;
* relativistic losses pair each generated latent with the real latent it came from:
  G minimises softplus(D(real) - D(fake)), D minimises softplus(D(fake) - D(real));
* a contrastive term trains D to score a real latent higher with its own prompt than with another
  item's prompt: softplus(D(real, wrong prompt) - D(real, own prompt)).

Updates alternate, one per loop step: generator on even steps, discriminator on odd steps, each with
its own optimizer (the order of the reference implementation). An optional ODE warm-up regresses G
onto its frozen base's guided sampling trajectories before the adversarial phase.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prestissimo.models.config import FLOW_OBJECTIVES, SamplingDefaults
from prestissimo.models.denoiser import Conditioning
from prestissimo.models.dit import DiffusionTransformer
from prestissimo.pipeline import TextToAudio
from prestissimo.posttrain.trajectories import TrajectoryCache
from prestissimo.request import check_sampling
from prestissimo.runtime.hardware import resolve_precision
from prestissimo.sampling.guidance import cfg_denoiser, null_conditioning
from prestissimo.sampling.samplers import sample_euler
from prestissimo.sampling.schedules import linear_schedule, logsnr_schedule
from prestissimo.training.config import DEFAULT_EVAL_PROMPTS, PRECISIONS, LoopConfig, OptimizerConfig
from prestissimo.training.diffusion import NOISE_DISTRIBUTIONS, cfg_dropout, sample_noise_levels
from prestissimo.training.dit import log_samples, with_ema_weights
from prestissimo.training.loop import Batch, Phase, RunLogger


HEADS = ("convnext", "conv")
TEACHER_SCHEDULES = ("logsnr", "linear")


# ----------------------------------------------------------------------------- losses (pure functions)
def relativistic_generator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """mean softplus(D(real) - D(fake)): G wants each generated sample to outscore its real partner."""
    return F.softplus(d_real - d_fake).mean()


def relativistic_discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """mean softplus(D(fake) - D(real)): the generator loss with the roles swapped."""
    return F.softplus(d_fake - d_real).mean()


def contrastive_loss(d_matched: torch.Tensor, d_mismatched: torch.Tensor) -> torch.Tensor:
    """mean softplus(D(x, wrong prompt) - D(x, own prompt)), on real latents only."""
    return F.softplus(d_mismatched - d_matched).mean()


def approximate_gradient_penalty(disc: nn.Module, x: torch.Tensor, *args: Any, generator: torch.Generator,
                                 std: float = 0.05) -> torch.Tensor:
    """Finite-difference R1/R2: mean over items of sum (D(x + delta) - D(x))^2, delta ~ N(0, std^2).
    For a linear D its expectation is std^2 ||grad_x D||^2, without double back-propagation."""
    delta = torch.randn(x.shape, generator=generator).to(x) * std
    diff = disc(x + delta, *args) - disc(x, *args)
    return diff.pow(2).flatten(1).sum(1).mean()


def mismatched_pairing(prompts: list[str], rng: np.random.Generator) -> np.ndarray:
    """partner[i] != i and prompts[partner[i]] != prompts[i] for every i: each real latent is scored
    against a prompt that is truly not its own (a clean version of the reference's in-place roll,
    which can pair an item with itself or with an identical caption).

    Items are put in random order grouped by prompt and each is paired with the item m places on,
    m being the largest group: that never lands in the item's own group, and exists exactly when no
    prompt covers more than half of the batch.
    """
    n = len(prompts)
    if n < 2:
        raise ValueError("the contrastive term needs at least two items per batch")
    _, labels, counts = np.unique(np.array(prompts, dtype=str), return_inverse=True, return_counts=True)
    m = int(counts.max())
    if 2 * m > n:
        raise ValueError(f"no mismatched pairing exists: one prompt covers {m} of the batch's {n} items; "
                         "use larger batches or more varied captions")
    group_rank = rng.permutation(len(counts))
    order = rng.permutation(n)
    order = order[np.argsort(group_rank[labels[order]], kind="stable")]
    partner = np.empty(n, dtype=np.int64)
    partner[order] = order[(np.arange(n) + m) % n]
    return partner


# ----------------------------------------------------------------------------- discriminator
class ConvHead(nn.Module):
    """4 x [Conv1d(k4, s2) -> GroupNorm -> SiLU] then Conv1d(k4) -> one logit per position (x16 shorter)."""

    def __init__(self, dim: int, channels: int = 128, soft_clip: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = dim
        for _ in range(4):
            layers += [nn.Conv1d(c_in, channels, 4, stride=2, padding=1), nn.GroupNorm(min(32, channels), channels),
                       nn.SiLU()]
            c_in = channels
        layers.append(nn.Conv1d(channels, 1, 4))
        self.layers = nn.Sequential(*layers)
        self.soft_clip = soft_clip

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.layers(h)
        return self.soft_clip * torch.tanh(out / self.soft_clip) if self.soft_clip > 0 else out


class ConvNeXtBlock1d(nn.Module):
    """Depthwise conv k7 -> LayerNorm -> pointwise x4 -> GELU -> pointwise back; the last layer starts at
    zero so the block starts as the identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.depthwise = nn.Conv1d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.expand = nn.Linear(channels, 4 * channels)
        self.project = nn.Linear(4 * channels, channels)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.depthwise(x).transpose(1, 2)
        h = self.project(F.gelu(self.expand(self.norm(h))))
        return x + h.transpose(1, 2)


class ConvNeXtHead(nn.Module):
    """Stages of ConvNeXt blocks with strided downsampling (kernel 2 x stride), then Conv1d(k3) -> 1."""

    def __init__(self, dim: int, channels: int = 128, c_mults: tuple[int, ...] = (1, 2, 4, 8),
                 strides: tuple[int, ...] = (2, 2, 2, 2), blocks: int = 3):
        super().__init__()
        if len(c_mults) != len(strides):
            raise ValueError("c_mults and strides need one entry per stage")
        layers: list[nn.Module] = [nn.Conv1d(dim, channels * c_mults[0], 1)]
        for i, stride in enumerate(strides):
            c = channels * c_mults[i]
            layers += [ConvNeXtBlock1d(c) for _ in range(blocks)]
            c_next = channels * c_mults[min(i + 1, len(c_mults) - 1)]
            layers.append(nn.Conv1d(c, c_next, 2 * stride, stride=stride, padding=stride // 2))
        layers.append(nn.Conv1d(channels * c_mults[-1], 1, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.layers(h)


@dataclass
class DiscriminatorConfig:
    hidden_layer: int | None = None  # transformer block whose output is read; default depth // 2
    head: str = "convnext"  # "convnext" or "conv"
    channels: int = 128
    c_mults: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # convnext
    strides: list[int] = field(default_factory=lambda: [2, 2, 2, 2])  # convnext (x16 in total)
    blocks: int = 3  # convnext blocks per stage
    soft_clip: float = 0.0  # conv head: s * tanh(x / s) when > 0


class ARCDiscriminator(nn.Module):
    """Trunk (a copy of the base DiT, blocks 0..hidden_layer only) + head -> logits [B, 1, T']."""

    def __init__(self, base: DiffusionTransformer, cfg: DiscriminatorConfig):
        super().__init__()
        depth = len(base.transformer.layers)
        layer = depth // 2 if cfg.hidden_layer is None else cfg.hidden_layer
        if not 0 <= layer < depth:
            raise ValueError(f"discriminator hidden_layer must be in [0, {depth - 1}] for this DiT, got {layer}")
        self.hidden_layer = layer
        self.trunk = copy.deepcopy(base)
        del self.trunk.transformer.layers[layer + 1:]  # never run: no memory, no optimizer state
        dim = base.cfg.embed_dim
        if cfg.head == "convnext":
            self.head: nn.Module = ConvNeXtHead(dim, cfg.channels, tuple(cfg.c_mults), tuple(cfg.strides), cfg.blocks)
        elif cfg.head == "conv":
            self.head = ConvHead(dim, cfg.channels, cfg.soft_clip)
        else:
            raise ValueError(f"discriminator head must be one of {HEADS}, got {cfg.head!r}")

    def forward(self, x: torch.Tensor, s: torch.Tensor, tokens: torch.Tensor | None,
                global_cond: torch.Tensor | None) -> torch.Tensor:
        """Noisy latents x [B, C, L] at levels s [B], conditioned like the DiT (raw conditioner outputs)."""
        context = self.trunk.embed_context(tokens) if tokens is not None else None
        h = self.trunk(x, s, global_cond=global_cond, context=context, exit_layer_ix=self.hidden_layer)
        logits = self.head(h.transpose(1, 2))  # prepended conditioning tokens stay in, as in the reference
        if logits.shape[-1] < 1:
            raise ValueError(f"the discriminator head shortens {h.shape[1]} tokens to nothing: use fewer strides")
        return logits


# ----------------------------------------------------------------------------- config and task
@dataclass
class LossWeights:
    generator: float = 1.0
    discriminator: float = 1.0
    contrastive: float = 1.0  # lambda; relative to the discriminator weight as in the reference
    gradient_penalty: float = 0.0  # finite-difference R1 + R2; 0 = off


@dataclass
class ODEWarmup:
    """Regress the generator's x0 estimate at points of its frozen base's guided trajectory onto the
    trajectory's end (reference code's optional warm-up; not part of the paper's method)."""

    steps: int = 0  # loop steps of warm-up before the adversarial phase; 0 = off
    teacher_steps: int = 20
    # The teacher's Euler times: "logsnr" (uniform in log-SNR over [-6, 2], the levels ping-pong
    # sampling visits; the reference's schedule, which it runs with DPM-Solver++) or "linear" (uniform
    # in t: small last steps, so cleaner end points, but few states at the high noise levels where
    # ping-pong queries the student; it made the worse student, docs/arc.md).
    teacher_schedule: str = "logsnr"
    cfg_scale: float = 4.0
    # 0: a fresh teacher trajectory for every item of every step (the reference). K > 0: K fixed
    # trajectories per conditioning, each computed once and kept in memory, so revisits of a prompt
    # cost no teacher calls (most of a warm-up step's time otherwise).
    trajectory_variants: int = 0
    # K > 0: also write the trajectories to RUN/trajectories/<fingerprint of teacher and settings>/, so a
    # resumed run reads them back instead of computing them again ((teacher_steps + 1) latents each on
    # disk: about 4.2 GB for 4000 prompts at 16 steps of the default model's 12 x 1280 latent).
    save_trajectories: bool = True
    # The generator's learning rate during the warm-up (None: optim.lr). Regression onto the teacher
    # tolerates a larger rate than the adversarial steps that follow, which keep optim.lr.
    lr: float | None = None
    # The warm-up's precision (None: loop.precision). Regression onto the teacher trains well in bf16
    # autocast, as the base DiT did, and its teacher trajectories run in it too; the adversarial
    # steps keep loop.precision.
    precision: str | None = None


@dataclass
class ARCSampling:
    """What the exported model samples with by default (saved in its model_config.json)."""

    sampler: str = "pingpong"
    steps: int = 8
    cfg_scale: float = 1.0
    eta: float = 1.0  # ping-pong's fresh-noise share (1: ping-pong as published)


@dataclass
class ARCEval:
    prompts: list[str] = field(default_factory=lambda: list(DEFAULT_EVAL_PROMPTS))
    seed: int = 0


@dataclass
class ARCConfig:
    """Everything `prestissimo posttrain arc` needs; saved with every checkpoint."""

    generator_noise: str = "logsnr_uniform"  # p_gen: the levels few-step ping-pong sampling visits
    discriminator_noise: str = "uniform"  # p_disc
    one_shot_probability: float = 0.1  # share of generator levels set to t = 1, where sampling starts
    contrastive: bool = True
    weights: LossWeights = field(default_factory=LossWeights)
    cfg_dropout: float = 0.1  # keeps the generator usable unconditionally
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    ode_warmup: ODEWarmup = field(default_factory=ODEWarmup)
    # Loop steps after the ODE warm-up in which only the discriminator trains. Adam moves the generator
    # by about its learning rate per step whatever the gradient carries, so gradients through an
    # untrained discriminator walk it away from its starting point; this lets D learn first.
    discriminator_warmup: int = 0
    activation_checkpointing: bool = False
    sampling: ARCSampling = field(default_factory=ARCSampling)
    eval: ARCEval = field(default_factory=ARCEval)
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(ema_decay=0.9999, ema_warmup_power=0.75))
    optim: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-5, betas=(0.9, 0.99)))
    disc_optim: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-5, betas=(0.9, 0.99)))

    def validate(self) -> None:
        for name in (self.generator_noise, self.discriminator_noise):
            if name not in NOISE_DISTRIBUTIONS:
                raise ValueError(f"unknown noise distribution {name!r} (choose from {NOISE_DISTRIBUTIONS})")
        if not 0.0 <= self.one_shot_probability <= 1.0 or not 0.0 <= self.cfg_dropout < 1.0:
            raise ValueError("one_shot_probability must be in [0, 1] and cfg_dropout in [0, 1)")
        if self.discriminator.head not in HEADS:
            raise ValueError(f"discriminator head must be one of {HEADS}, got {self.discriminator.head!r}")
        if self.contrastive and self.loop.batch_size < 2:
            raise ValueError("the contrastive term needs batch_size >= 2")
        if self.discriminator_warmup < 0:
            raise ValueError("discriminator_warmup must be >= 0 (0 = generator and discriminator alternate at once)")
        if self.ode_warmup.lr is not None and self.ode_warmup.lr <= 0:
            raise ValueError("ode_warmup.lr must be > 0 (or null: the generator's optim.lr)")
        if self.ode_warmup.precision is not None and self.ode_warmup.precision not in PRECISIONS:
            raise ValueError(f"ode_warmup.precision must be one of {PRECISIONS} (or null: loop.precision), "
                             f"got {self.ode_warmup.precision!r}")
        if self.ode_warmup.teacher_schedule not in TEACHER_SCHEDULES:
            raise ValueError(f"ode_warmup.teacher_schedule must be one of {TEACHER_SCHEDULES}, "
                             f"got {self.ode_warmup.teacher_schedule!r}")
        if self.ode_warmup.trajectory_variants < 0:
            raise ValueError("ode_warmup.trajectory_variants must be >= 0 (0 = a fresh trajectory every step)")
        try:  # the export's defaults: refused now, not after hours of training
            check_sampling(self.sampling.sampler, self.sampling.steps, self.sampling.cfg_scale, self.sampling.eta)
        except ValueError as e:
            raise ValueError(f"sampling: {e}") from None


def renoise(x0: torch.Tensor, s: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """(1 - s) x0 + s n: the rectified-flow forward process at levels s [B]."""
    s = s.view(-1, *([1] * (x0.dim() - 1)))
    return (1 - s) * x0 + s * noise


class ARCTask:
    """Generator (the base model's DiT + conditioner projections) and discriminator on the shared loop."""

    # Batch random streams: one per independent draw, so G and D steps never reuse numbers by accident.
    T_GEN, EPS, S_DISC, N_DISC, DROP, ONE_SHOT, PERM, GP, VARIANT = range(9)

    def __init__(self, cfg: ARCConfig, run_dir: Path, base_dir: str | Path):
        cfg.validate()
        self.cfg = cfg
        self.run_dir = run_dir
        self.tta = TextToAudio.from_pretrained(base_dir, device=cfg.loop.device)
        objective = self.tta.config.objective
        if objective not in FLOW_OBJECTIVES:
            raise ValueError(f"ARC post-trains rectified-flow models; {base_dir} has objective {objective!r}")
        self.tta.pretransform.eval().requires_grad_(False)
        self.tta.model.train().requires_grad_(True)
        self.tta.conditioner.train().requires_grad_(True)
        self.generator_params = [p for p in list(self.tta.model.parameters()) + list(self.tta.conditioner.parameters())
                                 if p.requires_grad]
        torch.manual_seed(cfg.loop.seed)
        self.disc = ARCDiscriminator(self.tta.model.model, cfg.discriminator).train().to(self.tta.device)
        self.teacher: nn.Module | None = None
        self.trajectories: TrajectoryCache | None = None
        if cfg.ode_warmup.steps > 0:
            self.teacher = copy.deepcopy(self.tta.model).eval().requires_grad_(False)
            if cfg.ode_warmup.trajectory_variants > 0:
                folder = self._trajectory_folder() if cfg.ode_warmup.save_trajectories else None
                self.trajectories = TrajectoryCache(seed=cfg.loop.seed, folder=folder)
        for net in (self.tta.model.model, self.disc.trunk):
            net.transformer.activation_checkpointing = cfg.activation_checkpointing

    def _trajectory_folder(self) -> Path:
        """RUN/trajectories/<digest of everything a trajectory depends on>: the teacher's and the text
        conditioner's weights as loaded from the base, the warm-up's teacher settings, the loop seed
        (start noise) and the latent shape. A resume with another base or teacher reads nothing stale."""
        wu, digest = self.cfg.ode_warmup, hashlib.sha256()
        settings = {"teacher_steps": wu.teacher_steps, "teacher_schedule": wu.teacher_schedule,
                    "cfg_scale": wu.cfg_scale,
                    "precision": resolve_precision(wu.precision or self.cfg.loop.precision, self.cfg.loop.device),
                    "seed": self.cfg.loop.seed, "objective": self.tta.config.objective,
                    "latent": [self.tta.config.dit.io_channels, self.tta.config.latent_length]}
        digest.update(json.dumps(settings, sort_keys=True).encode())
        for prefix, module in (("teacher", self.teacher), ("conditioner", self.tta.conditioner)):
            for name, tensor in sorted(module.state_dict().items()):
                digest.update(f"{prefix}.{name}".encode())
                digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return self.run_dir / "trajectories" / digest.hexdigest()[:16]

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.tta.model, "conditioner": self.tta.conditioner, "discriminator": self.disc}

    def ema_targets(self) -> dict[str, nn.Module]:
        return {"generator": self.tta.model, "conditioner": self.tta.conditioner}

    def warming_up(self, step: int) -> bool:
        return step < self.cfg.ode_warmup.steps

    def generator_turn(self, step: int) -> bool:
        if self.warming_up(step):
            return True
        adversarial = step - self.cfg.ode_warmup.steps - self.cfg.discriminator_warmup
        return adversarial >= 0 and adversarial % 2 == 0

    def phases(self) -> list[Phase]:
        warmup_lr = self.cfg.ode_warmup.lr
        warmup_scale = 1.0 if warmup_lr is None else warmup_lr / self.cfg.optim.lr
        warmup_precision = self.cfg.ode_warmup.precision or self.cfg.loop.precision
        return [Phase("generator", self.generator_params, self.generator_loss, self.cfg.optim,
                      active=self.generator_turn, frozen=[self.disc],
                      lr_scale=lambda step: warmup_scale if self.warming_up(step) else 1.0,
                      precision=lambda step: warmup_precision if self.warming_up(step) else self.cfg.loop.precision),
                Phase("discriminator", list(self.disc.parameters()), self.discriminator_loss, self.cfg.disc_optim,
                      active=lambda step: not self.generator_turn(step), updates_ema=False)]

    # -- pieces shared by both phases
    def _inputs(self, batch: Batch, phase: int) -> dict[str, Any]:
        x0 = batch.data["latents"].to(self.tta.device)
        shape = x0.shape[1:]
        t = sample_noise_levels(batch.rand(phase, self.T_GEN), self.cfg.generator_noise)
        t = torch.where(batch.rand(phase, self.ONE_SHOT) < self.cfg.one_shot_probability, torch.ones_like(t), t)
        eps = batch.randn(shape, phase, self.EPS, device=x0.device)
        s = sample_noise_levels(batch.rand(phase, self.S_DISC), self.cfg.discriminator_noise)
        n = batch.randn(shape, phase, self.N_DISC, device=x0.device)
        return {"x0": x0, "x_t": renoise(x0, t, eps), "t": t, "s": s, "n": n}

    def _generate(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        return self.tta.model(x_t, t, cond)  # the Denoiser: x_t - t v

    # -- generator phase
    def generator_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        if self.warming_up(batch.step):
            return self.ode_warmup_loss(batch)
        d = batch.data
        inp = self._inputs(batch, phase=0)
        tokens, global_cond = self.tta.conditioning_tokens(d["caption"], d["seconds_total"], d["seconds_start"])
        cond = cfg_dropout(self.tta.embed_conditioning(tokens, global_cond),
                           batch.rand(0, self.DROP) < self.cfg.cfg_dropout)
        fake = self._generate(inp["x_t"], inp["t"], cond)
        tokens = tokens.detach() if tokens is not None else None  # D reads them; it never trains G's conditioner
        global_cond = global_cond.detach() if global_cond is not None else None
        # Gradients flow through D to G; the loop keeps D frozen in this phase (Phase.frozen).
        d_fake = self.disc(renoise(fake, inp["s"], inp["n"]), inp["s"], tokens, global_cond)
        with torch.no_grad():
            d_real = self.disc(renoise(inp["x0"], inp["s"], inp["n"]), inp["s"], tokens, global_cond)
        loss = self.cfg.weights.generator * relativistic_generator_loss(d_real, d_fake)
        return loss, {"loss": float(loss.detach()), "d_real": float(d_real.mean()), "d_fake": float(d_fake.detach().mean())}

    # -- discriminator phase
    def discriminator_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        d, w = batch.data, self.cfg.weights
        inp = self._inputs(batch, phase=1)
        with torch.no_grad():
            tokens, global_cond = self.tta.conditioning_tokens(d["caption"], d["seconds_total"], d["seconds_start"])
            fake = self._generate(inp["x_t"], inp["t"], self.tta.embed_conditioning(tokens, global_cond))
        real_s, fake_s = renoise(inp["x0"], inp["s"], inp["n"]), renoise(fake, inp["s"], inp["n"])
        d_real = self.disc(real_s, inp["s"], tokens, global_cond)
        d_fake = self.disc(fake_s, inp["s"], tokens, global_cond)
        relativistic = w.discriminator * relativistic_discriminator_loss(d_real, d_fake)
        loss = relativistic
        logs = {"relativistic": float(relativistic.detach()), "d_real": float(d_real.detach().mean()),
                "d_fake": float(d_fake.detach().mean())}
        if self.cfg.contrastive:
            rng = np.random.default_rng([batch.seed, batch.step, self.PERM, batch.positions[0]])
            partner = mismatched_pairing(list(d["caption"]), rng)
            with torch.no_grad():  # only the prompt is swapped; each item keeps its own seconds
                wrong_tokens, wrong_global = self.tta.conditioning_tokens([d["caption"][j] for j in partner],
                                                                          d["seconds_total"], d["seconds_start"])
            d_wrong = self.disc(real_s, inp["s"], wrong_tokens, wrong_global)
            contrast = w.contrastive * w.discriminator * contrastive_loss(d_real, d_wrong)
            loss = loss + contrast
            logs.update(contrastive=float(contrast.detach()), d_mismatched=float(d_wrong.detach().mean()))
        if w.gradient_penalty > 0:
            g = batch.generators(16 + self.GP)[0]
            args = (inp["s"], tokens, global_cond)
            penalty = 0.5 * (approximate_gradient_penalty(self.disc, real_s, *args, generator=g)
                             + approximate_gradient_penalty(self.disc, fake_s, *args, generator=g))
            loss = loss + w.gradient_penalty * penalty
            logs["gradient_penalty"] = float(penalty.detach())
        logs["loss"] = float(loss.detach())
        return loss, logs

    # -- optional ODE warm-up
    def ode_warmup_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE between G's x0 at a random point of the teacher's guided Euler trajectory
        (ode_warmup.teacher_schedule) and the trajectory's end point."""
        d = batch.data
        cond = self.tta.conditioning(d["caption"], d["seconds_total"], d["seconds_start"])
        frozen = Conditioning(context=cond.context.detach() if cond.context is not None else None,
                              global_cond=cond.global_cond.detach() if cond.global_cond is not None else None,
                              global_prompt_mask=cond.global_prompt_mask)
        if self.trajectories is None:
            noise = batch.randn(d["latents"].shape[1:], 0, self.EPS, device=self.tta.device)
            states, levels, target = self._teacher_trajectories(frozen, noise)
        else:
            variants = (batch.rand(0, self.VARIANT) * self.cfg.ode_warmup.trajectory_variants).long()
            keys = [(caption, float(total), float(start), int(k)) for caption, total, start, k
                    in zip(d["caption"], d["seconds_total"], d["seconds_start"], variants)]
            found = self.trajectories.fetch(keys, d["latents"].shape[1:], lambda noise, rows:
                                            self._teacher_trajectories(frozen.rows(rows), noise.to(self.tta.device)))
            states, levels, target = (torch.stack([getattr(tr, name) for tr in found]).to(self.tta.device)
                                      for name in ("states", "levels", "end"))
        pick = (batch.rand(0, self.T_GEN) * states.shape[1]).long().clamp(max=states.shape[1] - 1)
        rows = torch.arange(len(pick))
        loss = F.mse_loss(self._generate(states[rows, pick], levels[rows, pick], cond), target)
        logs = {"loss": float(loss.detach()), "ode_warmup": float(loss.detach())}
        if self.trajectories is not None:
            logs["trajectories"] = float(len(self.trajectories))
        return loss, logs

    def _teacher_trajectories(self, cond: Conditioning, noise: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The frozen base's guided Euler run from ``noise``: the states it was queried at [B, S, ...],
        their levels [B, S] and the end points [B, ...]."""
        assert self.teacher is not None
        wu = self.cfg.ode_warmup
        states: list[torch.Tensor] = []
        levels: list[torch.Tensor] = []
        with torch.no_grad():
            guided = cfg_denoiser(self.teacher, cond, null_conditioning(cond), wu.cfg_scale)

            def recording(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                states.append(x)
                levels.append(t)
                return guided(x, t)

            times = (linear_schedule(wu.teacher_steps) if wu.teacher_schedule == "linear"
                     else logsnr_schedule(wu.teacher_steps, self.tta.config.objective))
            end = sample_euler(recording, noise, times, self.tta.config.objective)
        return torch.stack(states, 1), torch.stack(levels, 1), end

    # -- export and evaluation
    def export(self, ema: dict[str, nn.Module], out_dir: Path) -> Path:
        """A model directory (EMA generator) that loads with TextToAudio.from_pretrained and samples with
        ping-pong, no CFG, by default (objective rf_denoiser, as Stable Audio Open Small)."""
        model = with_ema_weights(self.tta, ema["generator"], ema["conditioner"])
        model.config = dataclasses.replace(model.config, objective="rf_denoiser", sampling=SamplingDefaults(
            **dataclasses.asdict(self.cfg.sampling)))
        return model.save_pretrained(out_dir)

    def evaluate(self, step: int, ema: dict[str, nn.Module], logger: RunLogger) -> dict[str, float]:
        model = TextToAudio.from_pretrained(self.export(ema, self.run_dir / "model"))
        e = self.cfg.eval
        audio = model.generate(e.prompts, seed=e.seed)  # the exported defaults: ping-pong, no CFG
        log_samples(model, e.prompts, audio, self.run_dir / "samples" / f"step_{step:08d}", step, logger)
        return {}
