"""``prestissimo bench``: per-stage latency of the generation path, against the machine's limits.

Every mode runs in the same process on the same weights, so ratios are meaningful on a shared,
noisy machine. Stage times are medians over runs after a warm-up; the end-to-end latency is
conditioning + steps x median denoiser call (x2 batch with CFG) + decode, each measured here.
Achieved GFLOP/s counts FLOPs with PyTorch's FlopCounterMode and is shown beside the measured peak
of a large matmul in the same precision.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..models.denoiser import Conditioning, x0_from_velocity
from .fast import RuntimeOptions
from .hardware import matmul_peak_gflops


@dataclass
class ModeResult:
    mode: str
    conditioning_s: float | None
    step_s: float
    decode_s: float
    end_to_end_s: float
    realtime_factor: float
    peak_rss_mb: float
    dit_gflops: float
    decode_gflops: float
    peak_gflops: float
    denoise_rel_err: float | None = None
    decode_rel_err: float | None = None
    speedup_vs_reference: float | None = None
    notes: list[str] = field(default_factory=list)


class PeakRSS:
    """Peak resident memory of this process during a block (polls /proc; Linux)."""

    def __enter__(self) -> "PeakRSS":
        self.peak, self._stop = self._rss(), threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> float:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except OSError:
            return float("nan")


def _median_time(fn: Callable[[], object], runs: int, device: torch.device) -> float:
    times = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@dataclass
class BenchSetup:
    seconds: float
    steps: int
    cfg_scale: float
    batch: int
    runs: int
    warmup: int = 1


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))


@dataclass
class Probe:
    """Fixed inputs and the plain fp32 outputs every mode is checked against."""

    x: torch.Tensor
    t: torch.Tensor
    latents: torch.Tensor
    x0: torch.Tensor
    audio: torch.Tensor


def make_probe(tta, setup: "BenchSetup", cond: Conditioning) -> Probe:
    cfg = tta.config
    g = torch.Generator().manual_seed(0)
    x = torch.randn(setup.batch, cfg.dit.io_channels, cfg.latent_length, generator=g).to(tta.device)
    t = torch.full((setup.batch,), 0.7, device=tta.device)
    latents = (torch.randn(x.shape, generator=g) * 0.5).to(tta.device)[:, : cfg.autoencoder.latent_dim]
    with torch.no_grad():
        x0 = tta.guided_denoiser(cond, setup.cfg_scale, plain=True)(x, t)
        audio = tta.pretransform.model.decode(latents)
    return Probe(x, t, latents, x0, audio)


def count_flops(tta, setup: BenchSetup, cond: Conditioning) -> tuple[int, int]:
    """FLOPs of one denoiser call (CFG included) and one decode, counted on the plain fp32 modules.

    Quantized kernels are invisible to FlopCounterMode, and every mode computes the same math, so
    one count serves all modes.
    """
    cfg = tta.config
    x = torch.zeros(setup.batch, cfg.dit.io_channels, cfg.latent_length, device=tta.device)
    t = torch.full((setup.batch,), 0.7, device=tta.device)
    denoise = tta.guided_denoiser(cond, setup.cfg_scale, plain=True)
    with torch.no_grad():
        dit = _flops(lambda: denoise(x, t))
        dec = _flops(lambda: tta.pretransform.model.decode(x[:1, : cfg.autoencoder.latent_dim])) * setup.batch
    return dit, dec


def bench_prestissimo(tta, setup: BenchSetup, options: RuntimeOptions | None, label: str,
                      text_available: bool, cond_tokens: Callable[[], Conditioning],
                      flops: tuple[int, int], probe: Probe) -> ModeResult:
    """Time one prestissimo mode: ``options=None`` is the plain (unoptimised) module path.

    Accuracy: the mode's denoiser output and decode on the probe inputs against plain fp32.
    """
    device = tta.device
    tta.unoptimize() if options is None else tta.optimize(options)
    fast = tta.fast
    prompts = ["benchmark prompt"] * setup.batch
    x, t = probe.x, probe.t
    notes = []
    with torch.no_grad(), PeakRSS() as rss:
        cond_s = None
        if text_available:
            for _ in range(setup.warmup):
                tta.encode_conditioning(prompts, setup.seconds)
            cond_s = _median_time(lambda: tta.encode_conditioning(prompts, setup.seconds), setup.runs, device)
            raw = tta.encode_conditioning(prompts, setup.seconds)
        else:
            raw = cond_tokens()
            notes.append("text encoder not available: conditioning stage not timed")
        # per-clip preparation (cast, text K/V cache) is timed once, as generation does it once per clip
        prep_s = _median_time(lambda: fast.prepare(raw), setup.runs, device) if fast is not None else 0.0
        denoise = tta.guided_denoiser(raw, setup.cfg_scale)
        # the probe's conditioning is the random one; accuracy uses it for every mode
        probe_denoise = tta.guided_denoiser(cond_tokens(), setup.cfg_scale)
        denoise_err = rel_err(probe_denoise(x, t), probe.x0)
        for _ in range(setup.warmup - 1):
            denoise(x, t)
        step_s = _median_time(lambda: denoise(x, t), setup.runs, device)
        latents = probe.latents
        decode_err = rel_err(tta.decode(latents), probe.audio)
        for _ in range(setup.warmup - 1):
            tta.decode(latents)
        decode_s = _median_time(lambda: tta.decode(latents), setup.runs, device)
    dit_flops, dec_flops = flops
    precision = "fp32" if options is None else options.precision
    e2e = (cond_s or 0.0) + prep_s + setup.steps * step_s + decode_s
    audio_s = setup.seconds * setup.batch
    return ModeResult(
        mode=label, conditioning_s=cond_s, step_s=step_s, decode_s=decode_s, end_to_end_s=e2e,
        realtime_factor=audio_s / e2e, peak_rss_mb=rss.peak,
        dit_gflops=dit_flops / step_s / 1e9, decode_gflops=dec_flops / decode_s / 1e9,
        peak_gflops=_peak(precision, device), denoise_rel_err=denoise_err, decode_rel_err=decode_err, notes=notes,
    )


def _peak(precision: str, device: torch.device) -> float:
    return _peak_for(precision, device.type)


@functools.lru_cache(maxsize=None)
def _peak_for(precision: str, device_type: str) -> float:
    """Measured once per process and precision: every mode's row shows the same peak."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.int8}[precision]
    n = 2048 if device_type == "cuda" or precision != "bf16" else 512  # bf16 can be ~100x slower on CPU
    return matmul_peak_gflops(dtype, device_type, n=n, budget_s=1.0)


def bench_reference(tta, setup: BenchSetup, cond_tokens: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                    flops: tuple[int, int], conditioning_s: float | None, probe: Probe) -> ModeResult:
    """diffusers' DiT + Oobleck VAE with the same weights, same steps, CFG batched the same way.

    The text encoder is the same transformers T5 in both implementations, so its time (measured on our
    side, ``conditioning_s``) is added to the reference's end-to-end latency rather than timed twice.
    """
    from .reference import diffusers_dit, diffusers_vae, diffusers_velocity

    device, cfg = tta.device, tta.config
    ref_dit = diffusers_dit(tta.model.model).to(device).eval()
    ref_vae = diffusers_vae(tta.pretransform.model).to(device).eval()
    tokens, glob = cond_tokens()
    x, t = probe.x, probe.t

    def step() -> torch.Tensor:
        if setup.cfg_scale == 1.0:
            return x0_from_velocity(x, t, diffusers_velocity(ref_dit, x, t, tokens, glob), cfg.objective)
        v = diffusers_velocity(ref_dit, torch.cat([x, x]), torch.cat([t, t]),
                               torch.cat([tokens, torch.zeros_like(tokens)]), torch.cat([glob, glob]))
        c, u = v.chunk(2)
        return x0_from_velocity(x, t, u + setup.cfg_scale * (c - u), cfg.objective)

    latents = probe.latents
    decode = lambda: ref_vae.decode(latents).sample  # noqa: E731
    with torch.no_grad(), PeakRSS() as rss:
        denoise_err = rel_err(step(), probe.x0)  # doubles as the warm-up
        step_s = _median_time(step, setup.runs, device)
        decode_err = rel_err(decode(), probe.audio)
        decode_s = _median_time(decode, setup.runs, device)
    dit_flops, dec_flops = flops
    e2e = (conditioning_s or 0.0) + setup.steps * step_s + decode_s
    return ModeResult(
        mode="reference (diffusers)", conditioning_s=conditioning_s, step_s=step_s, decode_s=decode_s, end_to_end_s=e2e,
        realtime_factor=setup.seconds * setup.batch / e2e, peak_rss_mb=rss.peak,
        dit_gflops=dit_flops / step_s / 1e9, decode_gflops=dec_flops / decode_s / 1e9,
        peak_gflops=_peak("fp32", device), denoise_rel_err=denoise_err, decode_rel_err=decode_err,
        notes=["conditioning time is prestissimo's (the same T5 runs in both)"] if conditioning_s else [],
    )


def format_table(results: list[ModeResult], title: str) -> str:
    head = ("mode", "cond s", "step s", "decode s", "end-to-end s", "x realtime", "peak RSS MB",
            "DiT GFLOP/s", "decode GFLOP/s", "matmul peak", "DiT err", "decode err", "speedup")
    rows = [head]
    for r in results:
        rows.append((
            r.mode, "-" if r.conditioning_s is None else f"{r.conditioning_s:.3f}", f"{r.step_s:.3f}",
            f"{r.decode_s:.2f}", f"{r.end_to_end_s:.2f}", f"{r.realtime_factor:.2f}", f"{r.peak_rss_mb:.0f}",
            f"{r.dit_gflops:.0f}", f"{r.decode_gflops:.0f}", f"{r.peak_gflops:.0f}",
            _err(r.denoise_rel_err), _err(r.decode_rel_err),
            "-" if r.speedup_vs_reference is None else f"{r.speedup_vs_reference:.2f}x",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    line = lambda row: "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"  # noqa: E731
    out = [title, "", line(rows[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in rows[1:]]
    return "\n".join(out)


def _err(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def to_json(results: list[ModeResult], setup: BenchSetup, meta: dict) -> str:
    return json.dumps({"setup": asdict(setup), **meta, "results": [asdict(r) for r in results]}, indent=2)
