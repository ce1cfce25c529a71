"""Noise-level schedules: decreasing times t_0 = 1 > ... > t_N = 0 for N sampling steps."""

from __future__ import annotations

import torch

from ..models.config import Objective
from ..models.denoiser import alpha_sigma, t_from_logsnr

#: log-SNR range per objective. RF: the released ping-pong sampler's [-6, 2]; v: the sigma range
#: [0.3, 500] that Stable Audio Open 1.0 samples with (lambda = -log sigma).
DEFAULT_LOGSNR_RANGE: dict[str, tuple[float, float]] = {
    "rectified_flow": (-6.0, 2.0),
    "rf_denoiser": (-6.0, 2.0),
    "v": (-6.214608, 1.203973),
    "edm": (-4.382027, 6.214608),  # EDM's sigma range [0.002, 80]
}


def linear_schedule(steps: int, t_start: float = 1.0) -> torch.Tensor:
    """t = linspace(t_start, 0, steps + 1): the plain Euler schedule of stable-audio-tools (t_start < 1:
    audio-to-audio from a partly noised input)."""
    _check_steps(steps)
    _check_start(t_start)
    return torch.linspace(t_start, 0.0, steps + 1, dtype=torch.float64)


def logsnr_schedule(steps: int, objective: Objective, logsnr_min: float | None = None,
                    logsnr_max: float | None = None, t_start: float = 1.0) -> torch.Tensor:
    """t_i from log-SNR spaced linearly in [min, max]; the ends are forced to t = t_start (1 unless
    audio-to-audio, where min becomes t_start's log-SNR) and t = 0.

    For rectified flow with N = 8 this is [1, .9933, .9820, .9526, .8808, .7311, .5, .2689, 0].
    """
    _check_steps(steps)
    _check_start(t_start)
    lo, hi = DEFAULT_LOGSNR_RANGE[objective]
    lo = lo if logsnr_min is None else logsnr_min
    hi = hi if logsnr_max is None else logsnr_max
    if t_start < 1.0:  # audio-to-audio: start at the input's noise level (lambda_0 = log(alpha / sigma))
        alpha, sigma = alpha_sigma(torch.tensor(t_start, dtype=torch.float64), objective)
        lo = float(torch.log(alpha / sigma))
        hi = max(hi, lo + 1e-3)
    if not lo < hi:
        raise ValueError(f"log-SNR range must be increasing, got [{lo}, {hi}]")
    lam = torch.linspace(lo, hi, steps + 1, dtype=torch.float64)
    t = t_from_logsnr(lam, objective)
    t[0], t[-1] = t_start, 0.0
    return t


def _check_start(t_start: float) -> None:
    if not 0.0 < t_start <= 1.0:
        raise ValueError(f"the starting noise level must be in (0, 1], got {t_start}")


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
