"""``TextToAudio``: a whole model (conditioners + DiT + autoencoder) and the generation path.

prompt, seconds -> conditioners -> Conditioning -> sampler (k denoiser calls) -> latents -> decode -> audio.

The module tree reproduces stable-audio-tools' ``ConditionedDiffusionModelWrapper`` so the combined
state dict has the released key names: ``model.model.*`` (DiT), ``pretransform.model.*`` (autoencoder)
and ``conditioner.conditioners.*`` (number embedders; the frozen T5 is not stored).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
from torch import nn

from .data.audio import save_wav
from .models.autoencoder import OobleckAutoencoder
from .models.conditioners import MultiConditioner, T5Conditioner, build_conditioner, save_text_encoder
from .models.config import ModelConfig
from .models.denoiser import Conditioning, Denoiser, add_noise
from .models.dit import DiffusionTransformer
from .models.envelope_prior import EnvelopePrior, layout_envelope
from .models.envelopes import envelope_channels, silence
from .models.loading import (check_state_dict, find_model_dir, normalize_keys, read_config, read_state_dict,
                             write_model_dir)
from .request import GenerationRequest, build_request, conditioning_inputs
from .sampling import cfg_denoiser, null_conditioning
from .sampling.guidance import hold_channels
from .sampling.samplers import sample_dpmpp_2m, sample_euler, sample_pingpong
from .sampling.schedules import linear_schedule, logsnr_schedule

if TYPE_CHECKING:
    from .runtime.fast import RuntimeOptions

log = logging.getLogger(__name__)


class Pretransform(nn.Module):
    """Holds the autoencoder under the ``pretransform.model`` prefix of the released checkpoints."""

    def __init__(self, autoencoder: OobleckAutoencoder):
        super().__init__()
        self.model = autoencoder


class TextToAudio(nn.Module):
    def __init__(self, config: ModelConfig, model_dir: Path | None = None):
        super().__init__()
        self.config = config
        self.model = Denoiser(DiffusionTransformer(config.dit), config.objective, config.edm_sigma_data)
        self.pretransform = Pretransform(OobleckAutoencoder(config.autoencoder))
        self.conditioner = MultiConditioner({
            c.id: build_conditioner(c.type, c.config, config.cond_dim, model_dir) for c in config.conditioners
        })
        # Keys envelope_prior.net.*: sampled first, its envelope held while the DiT samples the rest.
        self.envelope_prior = EnvelopePrior(config.envelope_prior) if config.envelope_prior is not None else None
        self.model_dir = model_dir
        self.__dict__["fast"] = None  # a runtime.FastPath once optimize() is called (not a submodule)

    def optimize(self, options: "RuntimeOptions | None" = None, **kwargs: Any) -> "TextToAudio":
        """Switch generation to the fast path (see ``prestissimo.runtime.RuntimeOptions``).

        It snapshots the current weights into inference copies: call it again after changing weights.
        ``optimize(None)`` with no arguments uses the defaults (fp32, fast decoder, cached text K/V).
        """
        from .runtime.fast import FastPath, RuntimeOptions

        options = options or RuntimeOptions(**kwargs)
        self.__dict__["fast"] = FastPath(self, options)
        return self

    def unoptimize(self) -> "TextToAudio":
        """Back to the plain reference path (the modules this object owns)."""
        self.__dict__["fast"] = None
        return self

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None, load_text_encoder: bool = True) -> "TextToAudio":
        """Load a model directory or hub repo id (``model_config.json`` + ``model.safetensors``/``model.ckpt``);
        with no argument, the model shipped inside the package.

        The dtype follows the device, never the checkpoint (fp16 on CPU is two orders of magnitude slower):
        fp32 unless asked otherwise. ``load_text_encoder=False`` skips the (external) text encoder, for
        inspecting or converting a checkpoint without it.
        """
        if dtype == torch.float16 and torch.device(device).type == "cpu":
            raise ValueError("float16 on CPU is extremely slow; use float32 or bfloat16")
        model_dir = find_model_dir(path_or_repo_id)
        config = ModelConfig.from_dict(read_config(model_dir))
        state = normalize_keys(read_state_dict(model_dir))
        model = cls(config, model_dir=model_dir)
        check_state_dict(model.state_dict(), state)
        model.load_state_dict(state, strict=True)
        model.eval().requires_grad_(False)
        if load_text_encoder:
            for cond in model.conditioner.conditioners.values():
                if isinstance(cond, T5Conditioner):
                    cond.load()
        return model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)

    @classmethod
    def from_preset(cls, name: str, device: str | torch.device = "cpu") -> "TextToAudio":
        """An untrained model of a named architecture; ``device="meta"`` builds it without allocating weights."""
        from .models.presets import preset

        with torch.device(device):
            return cls(ModelConfig.from_dict(preset(name)))

    def save_pretrained(self, out_dir: str | os.PathLike) -> Path:
        """Write the same format we read: model_config.json + model.safetensors (+ a local text encoder)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_model_dir(out, self.config.to_dict(), self.state_dict())
        for cond in self.conditioner.conditioners.values():
            if isinstance(cond, T5Conditioner) and self.model_dir is not None and (self.model_dir / cond.name).is_dir():
                target = out / cond.name
                source = self.model_dir / cond.name
                if target.resolve() == source.resolve():
                    continue
                if hasattr(cond.encoder, "save_pretrained"):
                    save_text_encoder(cond.encoder, cond.tokenizer, target)
                else:  # our own BERT reads a transformers folder but cannot write one: the frozen files as they are
                    shutil.copytree(source, target, dirs_exist_ok=True)
        return out

    # ------------------------------------------------------------------ generation
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def conditioning_inputs(self, prompts: Sequence[str], seconds_total: float | Sequence[float],
                            seconds_start: float | Sequence[float] = 0.0) -> dict[str, list[Any]]:
        """Per-conditioner inputs (see :func:`prestissimo.request.conditioning_inputs`)."""
        return conditioning_inputs(self.config, prompts, seconds_total, seconds_start)

    @torch.no_grad()
    def encode_conditioning(self, prompts: Sequence[str], seconds_total: float,
                            seconds_start: float = 0.0) -> Conditioning:
        """Run the conditioners once and assemble the DiT's cross-attention context and global embedding."""
        return self.conditioning(prompts, seconds_total, seconds_start)

    def conditioning(self, prompts: Sequence[str], seconds_total: float | Sequence[float],
                     seconds_start: float | Sequence[float] = 0.0) -> Conditioning:
        """encode_conditioning with gradients to the trainable parts (projections, number embedders,
        the DiT's context embedding): what training calls. Frozen text encoders stay frozen."""
        return self.embed_conditioning(*self.conditioning_tokens(prompts, seconds_total, seconds_start))

    def embed_conditioning(self, tokens: torch.Tensor | None, global_cond: torch.Tensor | None) -> Conditioning:
        """This model's DiT input from conditioner outputs (see :meth:`conditioning_tokens`)."""
        context = self.model.model.embed_context(tokens) if tokens is not None else None
        mask = self.global_prompt_mask()
        return Conditioning(context=context, global_cond=global_cond,
                            global_prompt_mask=None if mask is None or global_cond is None else mask.to(global_cond.device))

    def global_prompt_mask(self) -> torch.Tensor | None:
        """Which dims of the global vector come from a prompt (text) conditioner; None if none do."""
        dims = self.config.global_prompt_dims()
        return torch.tensor(dims) if any(dims) else None

    def conditioning_tokens(self, prompts: Sequence[str], seconds_total: float | Sequence[float],
                            seconds_start: float | Sequence[float] = 0.0
                            ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The conditioners' outputs before any DiT: cross-attention tokens [B, Tc, cond_dim] and the
        global vector [B, D]. Another DiT (a discriminator trunk) embeds them with its own layers.

        A conditioner in ``global_cond_ids`` contributes the mean of its unmasked tokens: the number
        embedders' single token as it is, a text encoder's pooled prompt (for MiniLM, its sentence
        embedding) as SD3 and Flux feed a pooled prompt to their adaLN."""
        out = self.conditioner(self.conditioning_inputs(prompts, seconds_total, seconds_start), self.device)
        dtype = self.dtype
        tokens = None
        if self.config.cross_attention_cond_ids:
            parts = [out[k][0] if out[k][0].dim() == 3 else out[k][0].unsqueeze(1)
                     for k in self.config.cross_attention_cond_ids]
            tokens = torch.cat(parts, dim=1).to(dtype)
        global_cond = None
        if self.config.global_cond_ids:
            global_cond = torch.cat([masked_mean(*out[k]) for k in self.config.global_cond_ids], dim=-1).to(dtype)
        return tokens, global_cond

    def request(self, prompts: str | Sequence[str], seconds: float | None = None, steps: int | None = None,
                sampler: str | None = None, cfg_scale: float | None = None,
                seed: int | None = None, eta: float | None = None) -> GenerationRequest:
        """Fill in the model's sampling defaults and validate; raises ValueError before any compute."""
        return build_request(self.config, prompts, seconds, steps, sampler, cfg_scale, seed, eta=eta)

    def guided_denoiser(self, cond: Conditioning, cfg_scale: float,
                        plain: bool = False) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """denoise(x, t) -> x0 for one clip's conditioning, with CFG, on the fast path when one is active
        (``plain=True``: always this object's own modules, the fp32 reference)."""
        uncond = null_conditioning(cond) if cfg_scale != 1.0 else None
        if self.fast is None or plain:
            return cfg_denoiser(self.model, cond, uncond, cfg_scale)
        return cfg_denoiser(self.fast.denoise, self.fast.prepare(cond),
                            None if uncond is None else self.fast.prepare(uncond), cfg_scale)

    def _schedule(self, sampler: str, steps: int, t_start: float = 1.0) -> torch.Tensor:
        if sampler == "euler":
            return linear_schedule(steps, t_start)
        return logsnr_schedule(steps, self.config.objective, t_start=t_start)

    @torch.no_grad()
    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio [C, T] or [B, C, T] at ``sample_rate`` -> latents [B, io_channels, latent_length]: cropped
        or zero-padded to the model's window, as the DiT sees them (envelope channels appended if it has any)."""
        if audio.dim() == 2:
            audio = audio[None]
        if audio.shape[1] != self.config.audio_channels:
            raise ValueError(f"init audio has {audio.shape[1]} channels; the model makes {self.config.audio_channels}")
        window = self.config.sample_size
        audio = torch.nn.functional.pad(audio[..., :window], (0, max(0, window - audio.shape[-1])))
        latents = self.pretransform.model.encode(audio.to(self.device, self.dtype))
        if self.config.envelope is None:
            return latents
        env = envelope_channels(audio.float().cpu(), self.sample_rate, self.config.envelope)
        return torch.cat([latents, env[..., : latents.shape[-1]].to(latents)], 1)

    @torch.no_grad()
    def prior_envelope(self, prompts: Sequence[str], seconds: float, noise: torch.Tensor) -> torch.Tensor:
        """The envelope prior's layout of the envelope channels [B, bands, latent_length] for the prompts,
        from ``noise`` [B, bands, latent_length / pool]; silent past ``seconds``."""
        if self.envelope_prior is None:
            raise ValueError("this model has no envelope prior")
        spec = self.envelope_prior.spec
        emb, mask = self.conditioner.conditioners[spec.prompt_id](list(prompts), self.device)
        made = self.envelope_prior.sample(noise, emb, masked_mean(emb, mask))
        length, hop = self.config.latent_length, self.config.autoencoder.downsampling_ratio
        audible = min(length, math.ceil(seconds * self.sample_rate / hop))
        return layout_envelope(made, spec, length, audible, silence(self.config.envelope))

    @torch.no_grad()
    def generate_latents(self, prompts: Sequence[str], seconds: float | None = None, steps: int | None = None,
                         sampler: str | None = None, cfg_scale: float | None = None, seed: int | None = None,
                         progress: Callable[[int, int], None] | None = None, init_audio: torch.Tensor | None = None,
                         init_noise_level: float = 1.0, eta: float | None = None,
                         use_envelope_prior: bool = True) -> torch.Tensor:
        """Sample latents [B, io_channels, L] (the autoencoder's, then any envelope channels) for the model's
        full window (conditioned on ``seconds``).

        Audio-to-audio: with ``init_audio`` ([C, T] at ``sample_rate``) sampling starts from its latents
        noised to ``init_noise_level`` t (1 = pure noise, the input is ignored; lower keeps more of it)
        and runs the same sampler over the rest of the schedule.

        A model with an envelope prior first samples its envelope channels with it (noise drawn after the
        DiT's, from the same seed) and holds them while the DiT samples the latents; not with
        ``init_audio`` (the input's own envelope leads) or ``use_envelope_prior=False``.
        """
        req = self.request(prompts, seconds, steps, sampler, cfg_scale, seed, eta=eta)
        if not 0.0 < init_noise_level <= 1.0:
            raise ValueError(f"init_noise_level must be in (0, 1], got {init_noise_level}")
        self._warn_truncation(req.prompts)

        device, dtype = self.device, self.dtype
        generator = torch.Generator(device="cpu")
        generator.manual_seed(req.seed if req.seed is not None else torch.seed())
        shape = (len(req.prompts), self.config.dit.io_channels, self.config.latent_length)
        noise = torch.randn(shape, generator=generator).to(device=device, dtype=dtype)
        objective = self.config.objective
        t_start = 1.0
        if init_audio is not None:
            t_start = float(init_noise_level)
            init = self.encode_audio(init_audio).expand(shape)
            noise = add_noise(init, noise, torch.full((shape[0],), t_start, device=device, dtype=dtype), objective)

        denoise = self.guided_denoiser(self.encode_conditioning(req.prompts, req.seconds), req.cfg_scale)
        if self.envelope_prior is not None and init_audio is None and use_envelope_prior:
            prior_shape = (shape[0], self.config.envelope_channels, shape[2] // self.envelope_prior.spec.pool)
            prior_noise = torch.randn(prior_shape, generator=generator).to(device)
            envelope = self.prior_envelope(req.prompts, req.seconds, prior_noise)
            latent_dim = self.config.autoencoder.latent_dim
            denoise = hold_channels(denoise, envelope.to(device, dtype), noise[:, latent_dim:], latent_dim, objective)
        ts = self._schedule(req.sampler, req.steps, t_start)
        if req.sampler == "pingpong":
            return sample_pingpong(denoise, noise, ts, objective, generator=generator, callback=progress, eta=req.eta)
        if req.sampler == "euler":
            return sample_euler(denoise, noise, ts, objective, callback=progress)
        return sample_dpmpp_2m(denoise, noise, ts, objective, callback=progress)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [B, io_channels, L] -> audio; envelope channels, if the model generates any, are dropped."""
        latents = latents[:, : self.config.autoencoder.latent_dim]
        if self.fast is not None:
            return self.fast.decode(latents)
        return self.pretransform.model.decode(latents.to(self.dtype))

    @torch.no_grad()
    def generate(self, prompts: str | Sequence[str], seconds: float | None = None, steps: int | None = None,
                 sampler: str | None = None, cfg_scale: float | None = None, seed: int | None = None,
                 progress: Callable[[int, int], None] | None = None, init_audio: torch.Tensor | None = None,
                 init_noise_level: float = 1.0, eta: float | None = None,
                 use_envelope_prior: bool = True) -> torch.Tensor:
        """Text -> audio [B, channels, samples] at ``sample_rate``, trimmed to ``seconds``
        (audio-to-audio with ``init_audio``: see :meth:`generate_latents`).

        Defaults (steps, sampler, CFG scale, ping-pong's eta) come from the model config: ping-pong / 8 /
        no CFG for ARC models, DPM-Solver++(2M) / 100 / 7 for v-objective models.
        """
        latents = self.generate_latents(prompts, seconds, steps, sampler, cfg_scale, seed, progress, init_audio,
                                        init_noise_level, eta, use_envelope_prior)
        audio = self.decode(latents).float()
        seconds = self.config.max_seconds if seconds is None else seconds
        return audio[..., : int(round(seconds * self.sample_rate))]

    def save_wav(self, audio: torch.Tensor, path: str | os.PathLike) -> list[Path]:
        """Write [C, T] as ``path``, or a batch [B, C, T] as path with _0, _1 ... suffixes."""
        path = Path(path)
        if audio.dim() == 2:
            return [save_wav(audio, path, self.sample_rate)]
        if audio.shape[0] == 1:
            return [save_wav(audio[0], path, self.sample_rate)]
        return [save_wav(a, path.with_name(f"{path.stem}_{i}{path.suffix}"), self.sample_rate)
                for i, a in enumerate(audio)]

    def _warn_truncation(self, prompts: list[str]) -> None:
        for cond in self.conditioner.conditioners.values():
            if isinstance(cond, T5Conditioner):
                for p in prompts:
                    n = cond.token_count(p)
                    if n > cond.max_length:
                        log.warning("prompt has %d tokens; the text encoder reads only the first %d", n, cond.max_length)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable-parameter counts per component (the frozen text encoder counted separately)."""
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        counts = {"dit": count(self.model), "autoencoder": count(self.pretransform),
                  "conditioners": count(self.conditioner)}
        if self.envelope_prior is not None:
            counts["envelope_prior"] = count(self.envelope_prior)
        text = sum(sum(p.numel() for p in c.encoder.parameters())
                   for c in self.conditioner.conditioners.values() if isinstance(c, T5Conditioner) and c.is_loaded)
        counts["checkpoint_total"] = sum(counts.values())
        counts["text_encoder"] = text
        return counts


def masked_mean(emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, T, D] tokens and [B, T] mask -> [B, D] mean over the unmasked tokens (zeros if none)."""
    if emb.dim() == 2:
        return emb
    weights = mask.to(emb.dtype).unsqueeze(-1)
    return (emb * weights).sum(1) / weights.sum(1).clamp(min=1.0)
