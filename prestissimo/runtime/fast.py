"""The fast generation path: one switch per optimisation, each checked against fp32 in the tests.

``FastPath`` holds inference-only copies (folded decoder, int8 or bf16 DiT) built from a model's
weights; the model's own parameters, state dict and training behaviour are untouched.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from typing import Callable, Literal

import torch
from torch import nn

from ..models.denoiser import Conditioning, Denoiser
from .decoder import FastDecoder, decode_chunked, receptive_margin
from .quantize import quantize_linear_int8

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS = ("fp32", "bf16", "int8")


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run inference.

    precision: fp32; bf16 (DiT and decoder in bfloat16: fast on GPUs and CPUs with AVX-512 BF16/AMX,
      very slow elsewhere); int8 (DiT linear layers int8 dynamic quantization, decoder fp32).
    fast_decoder: folded weight norm, channels-last convolutions, fused Snake (exact up to rounding).
    compile: torch.compile the denoiser and decoder, falling back to eager if compilation fails.
    cache_context_kv: cross-attention keys/values of the text computed once per generation.
    decode_chunk_frames: decode in windows of this many latent frames (bounded memory), None = whole clip.
    """

    precision: Precision = "fp32"
    fast_decoder: bool = True
    compile: bool = False
    cache_context_kv: bool = True
    decode_chunk_frames: int | None = None

    def validate(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.decode_chunk_frames is not None and self.decode_chunk_frames < 1:
            raise ValueError(f"decode chunk must be >= 1 latent frame, got {self.decode_chunk_frames}")


def _compiled(fn: Callable, example: Callable[[Callable], object], what: str) -> Callable:
    """torch.compile ``fn`` and try it once; any failure (no compiler, unsupported op) falls back to eager."""
    try:
        compiled = torch.compile(fn, dynamic=False)
        example(compiled)
        return compiled
    except Exception as e:  # inductor raises many error types; eager is always correct
        warnings.warn(f"torch.compile of the {what} failed ({type(e).__name__}); running eager", stacklevel=2)
        return fn


class FastPath:
    """Denoiser and decoder for inference, built once from a TextToAudio model."""

    def __init__(self, tta: "TextToAudio", options: RuntimeOptions):  # noqa: F821
        options.validate()
        self.options = options
        device = tta.device
        compute = torch.bfloat16 if options.precision == "bf16" else torch.float32
        if options.precision == "bf16" and device.type == "cpu":
            from .hardware import bf16_speedup

            ratio = bf16_speedup("cpu")
            if ratio < 1.0:
                log.warning("bf16 matmuls run %.2fx the speed of fp32 on this CPU (no AVX-512 BF16/AMX): "
                            "bf16 will be slower, use fp32 or int8", ratio)
        self.dtype = compute
        dit = tta.model.model
        if options.precision == "int8":
            if device.type != "cpu":
                raise ValueError("int8 dynamic quantization runs on CPU only; use bf16 on GPUs")
            dit = quantize_linear_int8(dit)
        elif compute != tta.dtype:
            import copy

            dit = copy.deepcopy(dit).to(compute)
        self.denoiser = Denoiser(dit, tta.config.objective).eval()
        ae_decoder = tta.pretransform.model.decoder
        self.scale = tta.config.autoencoder.scale
        self.latent_dim = tta.config.autoencoder.latent_dim
        if options.fast_decoder:
            decoder: nn.Module = FastDecoder(ae_decoder, compute)
        else:
            import copy

            decoder = ae_decoder if compute == tta.dtype else copy.deepcopy(ae_decoder).to(compute)
        self.decoder = decoder.eval()
        self._decode_fn: Callable = self.decoder
        self._denoise_fn: Callable = self.denoiser
        self._margin: int | None = None
        if options.compile:
            self._compile(tta)

    def _compile(self, tta) -> None:
        cfg = tta.config
        x = torch.zeros(1, cfg.dit.io_channels, cfg.latent_length, device=tta.device, dtype=self.dtype)
        t = torch.full((1,), 0.5, device=tta.device, dtype=self.dtype)
        cond = self.prepare(tta.encode_conditioning(["warm-up"], cfg.max_seconds))
        with torch.no_grad():
            self._denoise_fn = _compiled(self.denoiser, lambda f: f(x, t, cond), "denoiser")
            z = torch.zeros(1, cfg.autoencoder.latent_dim, 4, device=tta.device, dtype=self.dtype)
            self._decode_fn = _compiled(self.decoder, lambda f: f(z), "decoder")

    def prepare(self, cond: Conditioning) -> Conditioning:
        """Cast the conditioning and, if enabled, precompute the per-layer cross-attention K/V."""
        cast = lambda t: None if t is None else t.to(self.dtype)  # noqa: E731
        cond = Conditioning(context=cast(cond.context), global_cond=cast(cond.global_cond))
        if self.options.cache_context_kv and cond.context is not None:
            with torch.no_grad():
                cond = replace(cond, context_kv=self.denoiser.model.context_kv(cond.context))
        return cond

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        with torch.no_grad():
            return self._denoise_fn(x.to(self.dtype), t.to(self.dtype), cond).to(x.dtype)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        z = (latents * self.scale).to(self.dtype)
        with torch.no_grad():
            chunk = self.options.decode_chunk_frames
            if chunk is None or chunk >= z.shape[-1]:
                return self._decode_fn(z).float()
            if self._margin is None:
                self._margin = receptive_margin(self.decoder, self.latent_dim)
            return decode_chunked(self._decode_fn, z, chunk, self._margin).float()
