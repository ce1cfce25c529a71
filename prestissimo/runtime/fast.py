"""The fast generation path: one switch per optimisation, each checked against fp32 in the tests.

``FastPath`` holds inference-only copies (folded decoder, int8 or bf16 DiT) built from a model's
weights; the model's own parameters, state dict and training behaviour are untouched.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from ..models.denoiser import Conditioning, Denoiser
from .decoder import FastDecoder, decode_chunked, receptive_margin
from .quantize import quantize_linear_int8

if TYPE_CHECKING:
    from ..pipeline import TextToAudio

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS = ("fp32", "bf16", "int8")


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run inference.

    precision: fp32; bf16 (DiT in bfloat16: fast on GPUs and CPUs with AVX-512 BF16/AMX, very slow
      elsewhere); int8 (DiT linear layers int8 dynamic quantization, CPU). The decoder stays fp32 in
      every mode: a bf16 Oobleck decode drifted several percent from fp32 over its ~40 layers (random
      weights), above the 1% accuracy guard.
    fast_decoder: folded weight norm, channels-last convolutions, fused Snake (exact up to rounding).
    compile: fuse the decoder's Snake activations with torch.compile (one-time compile of ~5-20 s;
      falls back to eager when no compiler works). The DiT is matmul-bound and is not compiled.
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


class FastPath:
    """Denoiser and decoder for inference, built once from a TextToAudio model."""

    def __init__(self, tta: "TextToAudio", options: RuntimeOptions):
        options.validate()
        self.options = options
        device = tta.device
        compute = torch.bfloat16 if options.precision == "bf16" else torch.float32
        if options.precision == "bf16":
            from .hardware import warn_if_bf16_is_slow

            warn_if_bf16_is_slow(device, log)
        self.dtype = compute
        dit = tta.model.model
        if options.precision == "int8":
            if device.type != "cpu":
                raise ValueError("int8 dynamic quantization runs on CPU only; use bf16 on GPUs")
            dit = quantize_linear_int8(dit)
        elif compute != tta.dtype:
            dit = copy.deepcopy(dit).to(compute)
        self.denoiser = Denoiser(dit, tta.config.objective, tta.config.edm_sigma_data).eval()
        ae_decoder = tta.pretransform.model.decoder
        self.scale = tta.config.autoencoder.scale
        self.latent_dim = tta.config.autoencoder.latent_dim
        self.decode_dtype = next(ae_decoder.parameters()).dtype
        if options.fast_decoder:
            decoder: nn.Module = FastDecoder(ae_decoder, fuse_snake=options.compile)
        else:
            decoder = ae_decoder
        self.decoder = decoder.eval()
        self._margin: int | None = None

    def prepare(self, cond: Conditioning) -> Conditioning:
        """Cast the conditioning and, if enabled, precompute the per-layer cross-attention K/V."""
        cast = lambda t: None if t is None else t.to(self.dtype)  # noqa: E731
        cond = Conditioning(context=cast(cond.context), global_cond=cast(cond.global_cond),
                            global_prompt_mask=cond.global_prompt_mask)
        if self.options.cache_context_kv and cond.context is not None:
            with torch.no_grad():
                cond = replace(cond, context_kv=self.denoiser.model.context_kv(cond.context))
        return cond

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        with torch.no_grad():
            return self.denoiser(x.to(self.dtype), t.to(self.dtype), cond).to(x.dtype)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        z = (latents[:, : self.latent_dim] * self.scale).to(self.decode_dtype)  # envelope channels dropped
        with torch.no_grad():
            chunk = self.options.decode_chunk_frames
            if chunk is None or chunk >= z.shape[-1]:
                return self.decoder(z).float()
            if self._margin is None:
                self._margin = receptive_margin(self.decoder, self.latent_dim)
            return decode_chunked(self.decoder, z, chunk, self._margin).float()
