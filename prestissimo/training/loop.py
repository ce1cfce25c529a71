"""The one training loop: every trainer (autoencoder, base DiT, post-training methods) is a `TrainTask`
that supplies networks, loss phases and evaluation; the loop does everything else.

Per step: the global batch is drawn (deterministically from (seed, step): no sampler state to save),
split over processes and accumulation micro-batches; each phase (one optimizer each, e.g. generator
then discriminator) computes its loss per micro-batch under autocast, scales it by the micro-batch's
share of the global batch and back-propagates; gradients are summed across processes, clipped and
applied; EMA copies follow; logs, evaluations and atomic checkpoints happen on their schedule.
Randomness inside losses comes from `Batch.generators()`: one generator per item, seeded by
(seed, step, phase, global position), so a run gives the same numbers whatever the number of
processes or accumulation steps, and after a resume.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from prestissimo.training import checkpoint as ckpt
from prestissimo.training.config import LoopConfig, OptimizerConfig
from prestissimo.training.distributed import (DistInfo, all_reduce_sum, barrier, broadcast_parameters,
                                              sum_gradients)

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """Losses stayed non-finite for too many consecutive steps; the last good checkpoint is intact."""


@dataclass
class Batch:
    """A micro-batch: collated items plus where they sit in the global batch."""

    data: dict[str, Any]
    positions: list[int]  # global positions (0 .. batch_size-1) of these items
    step: int
    seed: int
    weight: float  # share of the global batch: len(positions) / batch_size
    device: str = "cpu"  # where the collated tensors live and where randn / rand put their numbers

    def generators(self, phase: int = 0, device: str | torch.device = "cpu") -> list[torch.Generator]:
        """One independent generator per item, fixed by (seed, step, phase, position)."""
        gens = []
        for pos in self.positions:
            g = torch.Generator(device=device)
            g.manual_seed(int(np.random.SeedSequence([self.seed, self.step, phase, pos]).generate_state(1)[0]))
            gens.append(g)
        return gens

    def randn(self, shape_per_item: Sequence[int], phase: int = 0, stream: int = 0,
              device: str | torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """[B, *shape] standard normal noise, item i drawn from its own generator (on the CPU, so the
        numbers are the same whatever ``device`` they are moved to)."""
        gens = self.generators(phase * 16 + stream)
        noise = torch.stack([torch.randn(*shape_per_item, generator=g) for g in gens])
        return noise.to(device=device or self.device, dtype=dtype)

    def rand(self, phase: int = 0, stream: int = 1, device: str | torch.device | None = None) -> torch.Tensor:
        """[B] uniform(0, 1) numbers, one per item."""
        gens = self.generators(phase * 16 + stream)
        return torch.cat([torch.rand(1, generator=g) for g in gens]).to(device or self.device)


LossFn = Callable[[Batch], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class Phase:
    """One optimizer and the loss it minimises (a GAN has a generator phase and a discriminator phase)."""

    name: str
    parameters: list[nn.Parameter]
    loss: LossFn
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    active: Callable[[int], bool] = lambda step: True
    # Networks the loss runs through that must not receive gradients in this phase (a GAN generator
    # step's discriminator): frozen through forward *and* backward, which activation checkpointing
    # needs (its recomputation must see the same requires_grad flags as the forward pass).
    frozen: list[nn.Module] = field(default_factory=list)
    # Whether this phase changes the EMA targets: the EMA is updated after steps where one such phase
    # ran, so a GAN's discriminator steps do not shorten its generator's EMA horizon.
    updates_ema: bool = True
    # Multiplier of the scheduled learning rate at a loop step: one optimizer, and its Adam moments, can
    # then run stages at different rates (ARC's ODE warm-up before its adversarial steps).
    lr_scale: Callable[[int], float] = lambda step: 1.0
    # Precision ("fp32", "bf16" or "auto", resolved per device) at a loop step; None: the loop's. A stage
    # that is plain regression (ARC's ODE warm-up) can then run in bf16 while a later stage that needs fp32 (ARC's
    # finite-difference gradient penalty would drown in bf16 rounding) keeps it.
    precision: Callable[[int], str] | None = None


@contextlib.contextmanager
def frozen_parameters(modules: Sequence[nn.Module]) -> Iterator[None]:
    """requires_grad False on every parameter of ``modules`` for the block, then as before."""
    params = [p for m in modules for p in m.parameters()]
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, before):
            p.requires_grad_(flag)


class TrainTask(Protocol):
    """What a trainer supplies. `modules` are checkpointed; `ema_targets` get EMA copies."""

    def modules(self) -> dict[str, nn.Module]: ...

    def phases(self) -> list[Phase]: ...

    def ema_targets(self) -> dict[str, nn.Module]: ...

    def evaluate(self, step: int, ema: dict[str, nn.Module], logger: "RunLogger") -> dict[str, float]: ...


class Dataset(Protocol):
    def __len__(self) -> int: ...

    def get(self, index: int, rng: np.random.Generator) -> dict[str, Any] | None: ...

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]: ...


def lr_factor(step: int, cfg: OptimizerConfig, total_steps: int) -> float:
    """Multiplier of the base learning rate: linear warm-up, then constant or cosine decay."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "cosine" and total_steps > cfg.warmup_steps:
        progress = min(1.0, (step - cfg.warmup_steps) / (total_steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


def build_optimizer(params: list[nn.Parameter], cfg: OptimizerConfig,
                    total_steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    cfg.validate()
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, cfg, total_steps))


def adopt_configured_hyperparameters(opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LambdaLR,
                                     cfg: OptimizerConfig) -> list[str]:
    """Make a resumed optimizer use the config's lr, betas and weight decay; returns what changed.

    Loading an optimizer and scheduler state restores the *saved* hyper-parameters, so a run resumed with
    a new learning rate would silently keep the old one. Moments and step counts are kept.
    """
    changed = []
    for key, value in (("initial_lr", cfg.lr), ("betas", tuple(cfg.betas)), ("weight_decay", cfg.weight_decay)):
        saved = opt.param_groups[0].get(key)
        if saved is not None and (tuple(saved) if key == "betas" else saved) != value:
            changed.append(f"{'lr' if key == 'initial_lr' else key} {saved} -> {value}")
        for group in opt.param_groups:
            group[key] = value
    sched.base_lrs = [cfg.lr for _ in opt.param_groups]
    for group, factor in zip(opt.param_groups, sched.lr_lambdas):
        group["lr"] = cfg.lr * factor(sched.last_epoch)
    return changed


class RunLogger:
    """TensorBoard (when installed) plus metrics.jsonl in the run directory; main process only."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.writer = None
        self.jsonl = None
        if not enabled:
            return
        self.jsonl = open(run_dir / "metrics.jsonl", "a")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:
            log.warning("tensorboard is not installed: logging to metrics.jsonl only")

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.jsonl.write(json.dumps({"step": step, **values}) + "\n")
        self.jsonl.flush()
        if self.writer:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)

    def audio(self, step: int, tag: str, clip: torch.Tensor, sample_rate: int) -> None:
        if self.enabled and self.writer:
            clip = clip.detach().float().cpu()
            mono = clip.mean(dim=0) if clip.dim() == 2 else clip
            self.writer.add_audio(tag, mono.clamp(-1, 1).unsqueeze(0), step, sample_rate=sample_rate)

    def image(self, step: int, tag: str, png_path: Path) -> None:
        if self.enabled and self.writer:
            import matplotlib.image as mpimg

            img = mpimg.imread(str(png_path))[..., :3]
            self.writer.add_image(tag, img, step, dataformats="HWC")

    def close(self) -> None:
        if self.jsonl:
            self.jsonl.close()
        if self.writer:
            self.writer.close()


def global_indices(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """Dataset indices of global batch `step`: the data stream is a sequence of seeded permutations
    (one per epoch), so batch `step` is known without replaying the ones before it."""
    perms: dict[int, np.ndarray] = {}  # a batch spans at most a few epochs: draw each permutation once
    out = []
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch, within = divmod(pos, n)
        if epoch not in perms:
            perms[epoch] = np.random.default_rng([seed, epoch]).permutation(n)
        out.append(int(perms[epoch][within]))
    return out


def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        e_params = list(ema.parameters())
        m_params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(e_params, m_params, 1.0 - decay)
        for eb, mb in zip(ema.buffers(), model.buffers()):
            eb.copy_(mb)


class Trainer:
    """Runs a TrainTask on a Dataset, writing everything into run_dir."""

    def __init__(self, task: TrainTask, dataset: Dataset, loop: LoopConfig, run_dir: str | Path,
                 run_config: dict[str, Any], dist_info: DistInfo | None = None, progress: bool = True):
        self.task, self.dataset, self.cfg = task, dataset, loop
        self.run_dir = Path(run_dir)
        self.run_config = run_config
        self.dist = dist_info or DistInfo()
        self.progress = progress
        loop.validate(self.dist.world_size)
        self._bf16_checked = False  # one timing probe and one warning per run, at the first bf16 step
        self._auto_logged = False  # "auto" precision says once what it chose
        if len(dataset) == 0:
            raise ValueError("the dataset is empty")
        self.modules = task.modules()
        self.phases = task.phases()
        self.optimizers = [build_optimizer(p.parameters, p.optimizer, loop.max_steps) for p in self.phases]
        self.ema = {name: copy.deepcopy(m).requires_grad_(False).eval()
                    for name, m in task.ema_targets().items()} if loop.ema_decay > 0 else {}
        self.step = 0
        self.skipped = 0

    # -- state -------------------------------------------------------------------------------
    def _checkpointed_modules(self) -> dict[str, nn.Module]:
        return {**self.modules, **{f"ema_{k}": v for k, v in self.ema.items()}}

    def _optim_state(self) -> dict[str, Any]:
        return {p.name: {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
                for p, (opt, sched) in zip(self.phases, self.optimizers)}

    def save(self) -> Path | None:
        path = None
        if self.dist.is_main:
            meta = {"config": self.run_config, "skipped_steps": self.skipped}
            path = ckpt.save_checkpoint(self.run_dir, self.step, self._checkpointed_modules(), self._optim_state(),
                                        meta, keep=self.cfg.keep_checkpoints)
        barrier(self.dist)
        return path

    def resume(self) -> bool:
        """Continue from the latest checkpoint in run_dir; False when there is none."""
        path = ckpt.latest_checkpoint(self.run_dir)
        if path is None:
            return False
        optim_state, meta = ckpt.load_checkpoint(path, self._checkpointed_modules())
        for p, (opt, sched) in zip(self.phases, self.optimizers):
            if p.name not in optim_state:
                raise ckpt.CheckpointError(f"{path}: no optimizer state for phase {p.name!r}")
            opt.load_state_dict(optim_state[p.name]["optimizer"])
            sched.load_state_dict(optim_state[p.name]["scheduler"])
            for change in adopt_configured_hyperparameters(opt, sched, p.optimizer):
                log.warning("phase %r: the config changes %s since the checkpoint", p.name, change)
        self.step = int(meta["step"])
        self.skipped = int(meta.get("skipped_steps", 0))
        log.info("resumed from %s (step %d)", path, self.step)
        return True

    # -- data --------------------------------------------------------------------------------
    def _micro_batches(self, step: int) -> list[Batch]:
        cfg, world, rank = self.cfg, self.dist.world_size, self.dist.rank
        indices = global_indices(step, cfg.batch_size, len(self.dataset), cfg.seed)
        per_micro = cfg.batch_size // (world * cfg.grad_accum)
        batches = []
        for m in range(cfg.grad_accum):
            start = (m * world + rank) * per_micro
            positions = list(range(start, start + per_micro))
            items, kept = [], []
            for pos in positions:
                epoch = (step * cfg.batch_size + pos) // len(self.dataset)
                item = self.dataset.get(indices[pos], np.random.default_rng([cfg.seed, epoch, indices[pos]]))
                if item is not None:
                    items.append(item)
                    kept.append(pos)
            if items:
                data = {k: v.to(cfg.device) if isinstance(v, torch.Tensor) else v
                        for k, v in self.dataset.collate(items).items()}
                batches.append(Batch(data, kept, step, cfg.seed, len(kept) / cfg.batch_size, cfg.device))
        return batches

    # -- the loop ----------------------------------------------------------------------------
    def _run_phase(self, index: int, phase: Phase, batches: list[Batch]) -> dict[str, float] | None:
        opt, sched = self.optimizers[index]
        scale = phase.lr_scale(self.step)  # on the scheduled rate, recomputed each step: it never compounds
        for group, base, factor in zip(opt.param_groups, sched.base_lrs, sched.lr_lambdas):
            group["lr"] = base * factor(sched.last_epoch) * scale
        opt.zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        finite = True
        precision = phase.precision(self.step) if phase.precision is not None else self.cfg.precision
        if precision == "auto":
            from prestissimo.runtime.hardware import resolve_precision

            precision = resolve_precision(precision, self.cfg.device)  # measured once per process
            if not self._auto_logged and self.dist.is_main:  # shown by the CLI, which prints warnings only
                self._auto_logged = True
                log.warning("precision auto: %s on this %s", precision, torch.device(self.cfg.device).type)
        elif precision == "bf16" and not self._bf16_checked:  # also when only a phase's stage runs in bf16
            self._bf16_checked = True
            if self.dist.is_main:
                from prestissimo.runtime.hardware import warn_if_bf16_is_slow

                warn_if_bf16_is_slow(self.cfg.device, log)
        autocast = torch.autocast(device_type=torch.device(self.cfg.device).type, dtype=torch.bfloat16,
                                  enabled=precision == "bf16")
        for batch in batches:
            with frozen_parameters(phase.frozen):
                with autocast:
                    loss, parts = phase.loss(batch)
                if not torch.isfinite(loss):
                    finite = False
                    break
                (loss.float() * batch.weight).backward()
            for k, v in parts.items():
                logs[f"{phase.name}/{k}"] = logs.get(f"{phase.name}/{k}", 0.0) + v * batch.weight
        finite = all_reduce_sum(float(not finite), self.dist) == 0.0  # every process must agree to step
        if not finite:
            opt.zero_grad(set_to_none=True)
            return None
        sum_gradients(phase.parameters, self.dist)
        params = [p for p in phase.parameters if p.grad is not None]
        if phase.optimizer.grad_clip > 0 and params:
            norm = torch.nn.utils.clip_grad_norm_(params, phase.optimizer.grad_clip)
            if not torch.isfinite(norm):
                opt.zero_grad(set_to_none=True)
                return None
            logs[f"{phase.name}/grad_norm"] = float(norm)
        opt.step()
        logs[f"{phase.name}/lr"] = opt.param_groups[0]["lr"]  # the rate this step used
        sched.step()
        # Logged losses are weighted by each micro-batch's share of the global batch: summing over
        # processes gives the global-batch mean.
        return {k: all_reduce_sum(v, self.dist) if not k.endswith(("grad_norm", "lr")) else v
                for k, v in logs.items()}

    def _evaluate(self, logger: RunLogger) -> None:
        if self.dist.is_main:
            scores = self.task.evaluate(self.step, self.ema or self.task.ema_targets(), logger)
            if scores:
                logger.scalars(self.step, {f"eval/{k}": v for k, v in scores.items()})
        barrier(self.dist)

    def fit(self) -> None:
        from tqdm import tqdm

        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            (self.run_dir / "config.json").write_text(json.dumps(self.run_config, indent=2) + "\n")
        broadcast_parameters(self._checkpointed_modules(), self.dist)
        logger = RunLogger(self.run_dir, self.dist.is_main)
        # Redirected to a log file, a bar redrawn every step would write a line per step.
        bar = tqdm(total=cfg.max_steps, initial=self.step, desc="training", unit="step",
                   disable=not (self.progress and self.dist.is_main),
                   mininterval=0.1 if sys.stderr.isatty() else 60.0)
        bad_in_a_row = 0
        window_start, window_steps = time.perf_counter(), 0
        # Every logged value is the mean over the steps since the last log line, so phases that run on
        # alternate steps (ARC's generator and discriminator) are both reported.
        window_sums: dict[str, float] = {}
        window_counts: dict[str, int] = {}
        try:
            while self.step < cfg.max_steps:
                batches = self._micro_batches(self.step)
                logs: dict[str, float] = {}
                ok = True
                for i, phase in enumerate(self.phases):
                    if not phase.active(self.step):
                        continue
                    out = self._run_phase(i, phase, batches)
                    if out is None:
                        ok = False
                        break
                    logs.update(out)
                if not ok:
                    bad_in_a_row += 1
                    self.skipped += 1
                    log.warning("step %d: non-finite loss or gradient, update skipped (%d in a row)",
                                self.step, bad_in_a_row)
                    if bad_in_a_row >= cfg.max_bad_steps:
                        raise TrainingDiverged(
                            f"{bad_in_a_row} consecutive steps with non-finite losses at step {self.step}; "
                            f"weights were not updated by them; last checkpoint: {ckpt.latest_checkpoint(self.run_dir)}")
                else:
                    bad_in_a_row = 0
                    if self.ema and any(p.updates_ema and p.active(self.step) for p in self.phases):
                        targets = self.task.ema_targets()
                        for name, ema in self.ema.items():
                            _ema_update(ema, targets[name], cfg.ema_decay_at(self.step))
                self.step += 1
                window_steps += 1
                bar.update(1)
                for k, v in logs.items():
                    window_sums[k] = window_sums.get(k, 0.0) + v
                    window_counts[k] = window_counts.get(k, 0) + 1
                if window_sums and (self.step % cfg.log_every == 0 or self.step == 1):
                    now = time.perf_counter()
                    means = {k: v / window_counts[k] for k, v in window_sums.items()}
                    means["steps_per_second"] = window_steps / max(now - window_start, 1e-9)
                    window_start, window_steps = now, 0
                    window_sums, window_counts = {}, {}
                    logger.scalars(self.step, means)
                    bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in means.items() if "loss" in k})
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.max_steps:
                    self.save()
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.max_steps:
                    self._evaluate(logger)
            # The last evaluation (which exports the model) runs after the loop, so resuming a run that
            # was stopped after its last checkpoint but before its export still exports it.
            self._evaluate(logger)
        finally:
            bar.close()
            logger.close()
