"""Typed training configurations, read from / written to JSON (saved with every checkpoint)."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

PRECISIONS = ("fp32", "bf16", "auto")  # auto: bf16 where it is faster than fp32 (runtime.hardware.resolve_precision)
#: What trainers sample at evaluation time unless configured: one tonal, one drum, one noise prompt.
DEFAULT_EVAL_PROMPTS = ("a slow sine melody in C major", "a fast busy drum beat", "pink noise fading in")
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class OptimizerConfig:
    """AdamW with linear warm-up, then constant or cosine decay to `min_lr_ratio` x lr."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "constant"
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # max global grad norm; 0 = off

    def validate(self) -> None:
        if self.lr <= 0 or self.grad_clip < 0 or self.warmup_steps < 0:
            raise ValueError("lr must be > 0, grad_clip and warmup_steps >= 0")
        if self.schedule not in LR_SCHEDULES:
            raise ValueError(f"schedule must be one of {LR_SCHEDULES}, got {self.schedule!r}")


@dataclass
class LoopConfig:
    """What every training run shares. batch_size is global: split over processes and accumulation."""

    max_steps: int = 1000
    batch_size: int = 8
    grad_accum: int = 1
    precision: str = "fp32"
    ema_decay: float = 0.999  # 0 = no EMA copy
    ema_warmup_power: float = 0.0  # > 0: decay min(ema_decay, 1 - (1 + step)^-power), ema_pytorch's warm-up
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    eval_every: int = 0  # 0 = only at the end
    log_every: int = 10
    seed: int = 0
    max_bad_steps: int = 20  # consecutive non-finite losses before the run stops
    device: str = "cpu"

    def ema_decay_at(self, step: int) -> float:
        """The EMA decay for the update after ``step``: constant, or warming up so that a short run's
        EMA is not dominated by the initial weights (0 at step 0, 0.41 at step 1, ... -> ema_decay)."""
        if self.ema_warmup_power <= 0:
            return self.ema_decay
        return min(self.ema_decay, 1.0 - (1.0 + step) ** -self.ema_warmup_power)

    def validate(self, world_size: int = 1) -> None:
        if self.max_steps < 1 or self.batch_size < 1 or self.grad_accum < 1 or self.checkpoint_every < 1:
            raise ValueError("max_steps, batch_size, grad_accum and checkpoint_every must be >= 1")
        if self.batch_size % (world_size * self.grad_accum):
            raise ValueError(f"batch_size {self.batch_size} must divide evenly over {world_size} process(es) "
                             f"x {self.grad_accum} accumulation step(s)")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        import torch

        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise ValueError(f"device must be cpu, cuda or cuda:N, got {self.device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r}: PyTorch sees no CUDA GPU on this machine")


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _convert(args[0], value, where)
    if origin is tuple:
        return tuple(value)
    if origin in (list, dict) or tp in (Any,):
        return value
    if tp is float and isinstance(value, int):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build a (nested) dataclass from a dict; unknown keys are an error that names them."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown} (known: {sorted(names)})")
    return cls(**{k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()})


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def load_config(cls: type[T], path: str | Path | None) -> T:
    if path is None:
        return cls()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from err
    return from_dict(cls, data, str(path))


__all__ = ["LoopConfig", "OptimizerConfig", "from_dict", "load_config", "to_dict"]
