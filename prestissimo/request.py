"""A generation request: the model's sampling defaults filled in and every argument checked before compute,
and what each conditioner is fed for it.

torch-free, so that the torch pipeline and the numpy engine (``runtime.lite``) accept and refuse the
same requests with the same messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from .models.config import ModelConfig

#: Longest prompt accepted, in characters; longer text is almost certainly a mistake (a file pasted).
MAX_PROMPT_CHARS = 4000

SAMPLERS = ("pingpong", "euler", "dpmpp-2m")


@dataclass
class GenerationRequest:
    """Validated generation arguments; ``validate`` raises ValueError with a one-line reason."""

    prompts: list[str]
    seconds: float
    steps: int
    sampler: str
    cfg_scale: float
    seed: int | None
    eta: float = 1.0  # ping-pong's fresh-noise share; only the pingpong sampler reads it

    def validate(self, max_seconds: float) -> None:
        if not self.prompts:
            raise ValueError("no prompts given")
        for p in self.prompts:
            if not isinstance(p, str) or not p.strip():
                raise ValueError("prompt is empty")
            if len(p) > MAX_PROMPT_CHARS:
                raise ValueError(f"prompt is {len(p)} characters long; the limit is {MAX_PROMPT_CHARS}")
        if not (isinstance(self.seconds, (int, float)) and math.isfinite(self.seconds)) or self.seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds}")
        if self.seconds > max_seconds + 1e-6:
            raise ValueError(f"seconds must be at most {max_seconds:.2f} for this model, got {self.seconds}")
        check_sampling(self.sampler, self.steps, self.cfg_scale, self.eta)


def check_sampling(sampler: str, steps: int, cfg_scale: float, eta: float = 1.0) -> None:
    """One-line ValueError for sampling settings no sampler can run (a request's or a saved default)."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r} (choose from {', '.join(SAMPLERS)})")
    if not math.isfinite(cfg_scale) or cfg_scale < 0:
        raise ValueError(f"cfg scale must be a finite number >= 0, got {cfg_scale}")
    if not (isinstance(eta, (int, float)) and 0.0 <= eta <= 1.0):
        raise ValueError(f"eta must be a number in [0, 1] (1: ping-pong's fresh noise, 0: deterministic), got {eta!r}")
    if eta != 1.0 and sampler != "pingpong":
        raise ValueError(f"eta applies to the pingpong sampler only, not {sampler!r}")


def conditioning_inputs(config: ModelConfig, prompts: Sequence[str], seconds_total: float | Sequence[float],
                        seconds_start: float | Sequence[float] = 0.0) -> dict[str, list[Any]]:
    """Per-conditioner inputs: text conditioners get the prompts, number conditioners their seconds
    (one value for the whole batch, or one per prompt as in training)."""
    n = len(prompts)
    per_item = lambda v: list(v) if isinstance(v, Sequence) else [v] * n  # noqa: E731
    inputs: dict[str, list[Any]] = {}
    for cond in config.conditioners:
        if cond.type == "number":
            if cond.id == "seconds_start":
                inputs[cond.id] = per_item(seconds_start)
            elif cond.id == "seconds_total":
                inputs[cond.id] = per_item(seconds_total)
            else:
                raise ValueError(f"don't know what to feed the number conditioner {cond.id!r}")
        else:
            inputs[cond.id] = list(prompts)
    return inputs


def build_request(config: ModelConfig, prompts: str | Sequence[str], seconds: float | None = None,
                  steps: int | None = None, sampler: str | None = None, cfg_scale: float | None = None,
                  seed: int | None = None, eta: float | None = None) -> GenerationRequest:
    """Fill in the model's sampling defaults and validate; raises ValueError before any compute.

    ``eta`` belongs to the ping-pong sampler: given with another sampler it is refused; the model's
    default eta applies only when the request samples with ping-pong.
    """
    defaults = config.sampling
    chosen = defaults.sampler if sampler is None else sampler
    if eta is not None and chosen != "pingpong":
        raise ValueError(f"eta applies to the pingpong sampler only, not {chosen!r}")
    req = GenerationRequest(
        prompts=[prompts] if isinstance(prompts, str) else list(prompts),
        seconds=config.max_seconds if seconds is None else seconds,
        steps=defaults.steps if steps is None else steps,
        sampler=chosen,
        cfg_scale=defaults.cfg_scale if cfg_scale is None else float(cfg_scale),
        seed=seed,
        eta=(defaults.eta if eta is None else eta) if chosen == "pingpong" else 1.0,
    )
    req.validate(config.max_seconds)
    return req
