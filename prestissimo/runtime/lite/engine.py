"""``LiteTextToAudio``: text -> audio for the shipped kind of model with numpy only, no torch.

Why: importing torch alone takes about 2 s on a 2-core CPU, two thirds of `prestissimo generate`
with the shipped model (benchmarks/generate_wall_time.py). This engine reads the same model
directory (model_config.json + model.safetensors, the text encoder's folder), computes what
``TextToAudio.generate`` computes (tests/test_lite.py compares them), and draws the same noise for a
seed. It covers rectified-flow DiT models with Oobleck decoders, number conditioners and plain BERT
text encoders, with or without envelope channels and an envelope prior, sampled with ping-pong or
Euler; anything else is refused with the reason (:func:`unsupported_reason`), and the CLI then takes
the torch path.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ...models.config import FLOW_OBJECTIVES, ModelConfig
from ...models.loading import WEIGHTS_NAME, ModelLoadError, find_model_dir, read_config
from ...models.text_encoder_files import FastTokenizer, is_plain_bert, resolve_text_encoder, text_encoder_settings
from ...request import GenerationRequest, build_request, conditioning_inputs
from .bert import LiteBert
from .decoder import LiteDecoder
from .dit import LiteDiT, Prepared
from .noise import TorchCompatibleNormal
from .ops import Array, linear

log = logging.getLogger(__name__)

SAMPLERS = ("pingpong", "euler")
#: The ping-pong schedule's log-SNR range for rectified flow (sampling.schedules.DEFAULT_LOGSNR_RANGE).
LOGSNR_RANGE = (-6.0, 2.0)


class LiteUnsupported(ValueError):
    """The model or request needs something only the torch engine has; the message says what."""


def unsupported_reason(config: ModelConfig, model_dir: Path) -> str | None:
    """Why this engine cannot run the model, or None if it can."""
    if config.objective not in FLOW_OBJECTIVES:
        return f"the {config.objective!r} objective (only rectified flow)"
    if not (model_dir / WEIGHTS_NAME).is_file():
        return f"weights other than {WEIGHTS_NAME}"
    for cond in config.conditioners:
        if cond.type == "number":
            continue
        if cond.type not in ("t5", "text_encoder"):
            return f"the {cond.type!r} conditioner"
        name = text_encoder_settings(cond.type, cond.config)[0]
        folder = Path(resolve_text_encoder(name, model_dir))
        if not (folder.is_dir() and is_plain_bert(folder)):
            return f"the text encoder {name!r} (only plain BERT folders, e.g. all-MiniLM-L6-v2)"
    return None


def flow_schedule(sampler: str, steps: int) -> Array:
    """The same times as sampling.schedules for rectified flow: linear for Euler, log-SNR spaced for ping-pong."""
    if sampler == "euler":
        return np.linspace(1.0, 0.0, steps + 1)
    lam = np.linspace(*LOGSNR_RANGE, steps + 1)
    t = 1.0 / (1.0 + np.exp(lam))  # sigmoid(-lambda)
    t[0], t[-1] = 1.0, 0.0
    return t


class LiteTextToAudio:
    """A loaded model: conditioners, DiT and decoder as numpy arrays (float32)."""

    def __init__(self, config: ModelConfig, model_dir: Path):
        reason = unsupported_reason(config, model_dir)
        if reason is not None:
            raise LiteUnsupported(f"the numpy engine does not support {reason}; use the torch engine")
        self.config = config
        self.model_dir = model_dir
        weights = _read_weights(model_dir / WEIGHTS_NAME)
        self.dit = LiteDiT(config.dit, _ReadLog(_strip(weights, "model.model.")))
        self.decoder = LiteDecoder(config.autoencoder, _strip(weights, "pretransform.model.decoder."))
        self.decoder.w = _ReadLog(self.decoder.w)
        self.conditioner_weights = _ReadLog(_strip(weights, "conditioner.conditioners."))
        prior = config.envelope_prior
        self.prior = None if prior is None else LiteDiT(prior.dit, _ReadLog(_strip(weights, "envelope_prior.net.")))
        self.text: dict[str, tuple[FastTokenizer, LiteBert, int]] = {}
        for cond in config.conditioners:
            if cond.type != "number":
                name, max_length = text_encoder_settings(cond.type, cond.config)
                folder = resolve_text_encoder(name, model_dir)
                self.text[cond.id] = (FastTokenizer(folder), LiteBert(folder), max_length)
        self._check_weights(weights)

    def _check_weights(self, weights: dict[str, Array]) -> None:
        """Run every network once on the smallest input, so that a checkpoint that does not fit the config
        fails at load and is named, as the torch loader's strict check does: a missing key or a wrong
        shape stops the run, and stored tensors that nothing read are unexpected keys."""
        cfg = self.config
        inputs = conditioning_inputs(cfg, ["a"], cfg.max_seconds)  # a config torch cannot feed either: its own error
        try:
            outputs = self._conditioner_outputs(inputs)
            tokens, global_cond, _ = self._assemble(outputs)
            prep = self.dit.prepare(tokens, global_cond)
            self.dit.velocity(np.zeros((1, cfg.dit.io_channels, cfg.dit.patch_size), np.float32),
                              np.ones(1, np.float32), prep)
            if self.prior is not None:
                emb, mask = outputs[cfg.envelope_prior.prompt_id]
                self.prior.velocity(np.zeros((1, cfg.envelope_channels, cfg.envelope_prior.dit.patch_size), np.float32),
                                    np.ones(1, np.float32), self.prior.prepare(emb, _masked_mean(emb, mask)))
            self.decoder(np.zeros((1, cfg.autoencoder.latent_dim, 1), np.float32))
        except KeyError as e:
            raise ModelLoadError(f"checkpoint does not match the model config: missing key {e.args[0]!r}") from None
        except ValueError as e:  # numpy's shape errors
            raise ModelLoadError(
                f"checkpoint does not match the model config: a tensor has the wrong shape ({e})") from None
        read = {f"model.model.{k}" for k in self.dit.w.read}
        read |= {f"conditioner.conditioners.{k}" for k in self.conditioner_weights.read}
        if self.prior is not None:
            read |= {f"envelope_prior.net.{k}" for k in self.prior.w.read}
        for k in self.decoder.w.read:  # folded weight norm: reading "x.weight" used x.weight_g and x.weight_v
            stem = f"pretransform.model.decoder.{k}"
            read |= {stem, stem + "_g", stem + "_v"}
        unexpected = sorted(k for k in weights if k not in read and not k.startswith("pretransform.model.encoder."))
        if unexpected:
            more = f" ... and {len(unexpected) - 20} more" if len(unexpected) > 20 else ""
            raise ModelLoadError(f"checkpoint does not match the model config: unexpected keys ({len(unexpected)}): "
                                 f"{', '.join(unexpected[:20])}{more}")

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike | None = None) -> "LiteTextToAudio":
        """A model directory or hub id, or with no argument the model shipped in the package."""
        model_dir = find_model_dir(path_or_repo_id)
        return cls(ModelConfig.from_dict(read_config(model_dir)), model_dir)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def request(self, prompts: str | Sequence[str], seconds: float | None = None, steps: int | None = None,
                sampler: str | None = None, cfg_scale: float | None = None,
                seed: int | None = None, eta: float | None = None) -> GenerationRequest:
        """Defaults filled in and validated as ``TextToAudio.request`` does; samplers this engine lacks refused."""
        req = build_request(self.config, prompts, seconds, steps, sampler, cfg_scale, seed, eta=eta)
        if req.sampler not in SAMPLERS:
            raise LiteUnsupported(f"the numpy engine has no {req.sampler!r} sampler (only {', '.join(SAMPLERS)}); "
                                  f"use the torch engine")
        return req

    # ------------------------------------------------------------------ conditioning
    def _number(self, cond_id: str, values: list[float]) -> Array:
        """models.conditioners.NumberConditioner: clamp, normalise, learned Fourier features, linear -> [B, 1, D]."""
        cfg = self.config.conditioner(cond_id).config
        lo, hi = float(cfg.get("min_val", 0.0)), float(cfg.get("max_val", 1.0))
        x = ((np.clip(np.asarray(values, dtype=np.float32), lo, hi) - lo) / (hi - lo)).astype(np.float32)[:, None]
        w = self.conditioner_weights
        p = f"{cond_id}.embedder.embedding"
        freqs = x * w[f"{p}.0.weights"][None, :] * np.float32(2 * math.pi)
        features = np.concatenate([x, np.sin(freqs), np.cos(freqs)], axis=-1)
        return linear(features, w[f"{p}.1.weight"], w[f"{p}.1.bias"])[:, None, :]

    def _prompt(self, cond_id: str, prompts: list[str]) -> tuple[Array, Array]:
        tokenizer, bert, max_length = self.text[cond_id]
        for ids in tokenizer(prompts)["input_ids"]:
            if len(ids) > max_length:
                log.warning("prompt has %d tokens; the text encoder reads only the first %d", len(ids), max_length)
        # BERT runs on the longest prompt's tokens only, and the output is zero-padded to max_length
        # afterwards: the pipeline zeroes padded positions anyway, and masked keys leave the real ones
        # unchanged, so this equals encoding max_length tokens at a fraction of the cost (a prompt is ~10 tokens).
        enc = tokenizer(prompts, truncation=True, max_length=max_length, padding=True, return_tensors="np")
        mask = enc["attention_mask"].astype(bool)
        emb = bert(enc["input_ids"], mask)
        proj = f"{cond_id}.proj_out.weight"
        if proj in self.conditioner_weights:
            emb = linear(emb, self.conditioner_weights[proj], self.conditioner_weights.get(f"{cond_id}.proj_out.bias"))
        emb = emb * mask[..., None]
        width = max_length - mask.shape[1]
        return np.pad(emb, ((0, 0), (0, width), (0, 0))), np.pad(mask, ((0, 0), (0, width)))

    def conditioning(self, prompts: list[str], seconds: float) -> tuple[Array | None, Array | None, Array | None]:
        """Cross-attention tokens, global vector and which global dims come from a prompt, as the
        pipeline builds them."""
        return self._assemble(self._conditioner_outputs(conditioning_inputs(self.config, prompts, seconds)))

    def _conditioner_outputs(self, inputs: dict[str, list]) -> dict[str, tuple[Array, Array]]:
        """Per conditioner id: tokens [B, T, D] (padding zeroed) and their mask."""
        out: dict[str, tuple[Array, Array]] = {}
        for cond in self.config.conditioners:
            if cond.type == "number":
                emb = self._number(cond.id, inputs[cond.id])
                out[cond.id] = (emb, np.ones(emb.shape[:2], dtype=bool))
            else:
                out[cond.id] = self._prompt(cond.id, inputs[cond.id])
        return out

    def _assemble(self, out: dict[str, tuple[Array, Array]]) -> tuple[Array | None, Array | None, Array | None]:
        cfg = self.config
        tokens = np.concatenate([out[k][0] for k in cfg.cross_attention_cond_ids], axis=1) \
            if cfg.cross_attention_cond_ids else None
        global_cond = prompt_dims = None
        if cfg.global_cond_ids:
            global_cond = np.concatenate([_masked_mean(*out[k]) for k in cfg.global_cond_ids], axis=-1)
            prompt_dims = np.array(cfg.global_prompt_dims())
        return tokens, global_cond, prompt_dims

    def guided_denoiser(self, prompts: list[str], seconds: float, cfg_scale: float,
                        outputs: dict[str, tuple[Array, Array]] | None = None) -> Callable[[Array, float], Array]:
        """denoise(x, t) -> x0, with classifier-free guidance batched into one call when cfg_scale != 1."""
        if outputs is None:
            outputs = self._conditioner_outputs(conditioning_inputs(self.config, prompts, seconds))
        return _guided_x0(self.dit, *self._assemble(outputs), cfg_scale)

    # ------------------------------------------------------------------ generation
    def prior_envelope(self, outputs: dict[str, tuple[Array, Array]], seconds: float, noise: Array) -> Array:
        """TextToAudio.prior_envelope: the prior's Euler sampling with CFG from ``noise``, upsampled, silent
        past ``seconds``."""
        spec, cfg = self.config.envelope_prior, self.config
        emb, mask = outputs[spec.prompt_id]
        pooled = _masked_mean(emb, mask)
        denoise = _guided_x0(self.prior, emb, pooled, np.ones(pooled.shape[-1], bool), spec.cfg_scale)
        x = noise
        ts = flow_schedule("euler", spec.steps)
        for t, t_next in zip(ts[:-1], ts[1:]):
            x = _euler_step(x, denoise(x, float(t)), float(t), float(t_next))
        env = upsample_frames(x, spec.pool)[..., : cfg.latent_length]
        audible = min(cfg.latent_length, math.ceil(seconds * cfg.sample_rate / cfg.autoencoder.downsampling_ratio))
        env[..., audible:] = np.asarray(self.config.envelope.silence(), np.float32)[None, :, None]
        return env.astype(np.float32)

    def generate_latents(self, req: GenerationRequest, progress: Callable[[int, int], None] | None = None,
                         use_envelope_prior: bool = True) -> Array:
        noise = TorchCompatibleNormal(req.seed)
        shape = (len(req.prompts), self.config.dit.io_channels, self.config.latent_length)
        x = noise.randn(shape)
        outputs = self._conditioner_outputs(conditioning_inputs(self.config, req.prompts, req.seconds))
        denoise = self.guided_denoiser(req.prompts, req.seconds, req.cfg_scale, outputs)
        if self.prior is not None and use_envelope_prior:  # sampling.guidance.hold_channels: the envelope held
            spec, d = self.config.envelope_prior, self.config.autoencoder.latent_dim
            prior_noise = noise.randn((shape[0], self.config.envelope_channels, shape[2] // spec.pool))
            envelope = self.prior_envelope(outputs, req.seconds, prior_noise)
            env_noise, unheld = x[:, d:].copy(), denoise

            def denoise(x: Array, t: float) -> Array:
                noised = np.float32(1 - t) * envelope + np.float32(t) * env_noise
                x0 = unheld(np.concatenate([x[:, :d], noised], axis=1), t)
                return np.concatenate([x0[:, :d], envelope], axis=1)
        ts = flow_schedule(req.sampler, req.steps)
        n = len(ts) - 1
        for i in range(n):
            t, t_next = float(ts[i]), float(ts[i + 1])
            x0 = denoise(x, t)
            if req.sampler == "euler":
                x = _euler_step(x, x0, t, t_next)
            elif t_next > 0:  # ping-pong: re-noise the estimate with fresh noise (eta < 1: some of x's own)
                fresh = noise.randn(shape)
                if req.eta < 1.0:
                    predicted = (x - np.float32(1 - t) * x0) / np.float32(t)
                    fresh = np.float32(math.sqrt(1 - req.eta ** 2)) * predicted + np.float32(req.eta) * fresh
                x = np.float32(1 - t_next) * x0 + np.float32(t_next) * fresh
            else:
                x = x0
            if progress:
                progress(i + 1, n)
        return x

    def generate(self, prompts: str | Sequence[str], seconds: float | None = None, steps: int | None = None,
                 sampler: str | None = None, cfg_scale: float | None = None, seed: int | None = None,
                 progress: Callable[[int, int], None] | None = None, eta: float | None = None,
                 use_envelope_prior: bool = True) -> Array:
        """Text -> audio [B, channels, samples] at ``sample_rate``, as ``TextToAudio.generate``."""
        req = self.request(prompts, seconds, steps, sampler, cfg_scale, seed, eta=eta)
        latents = self.generate_latents(req, progress, use_envelope_prior)
        latents = latents[:, : self.config.autoencoder.latent_dim]  # envelope channels are not decoded
        audio = self.decoder(latents * np.float32(self.config.autoencoder.scale))
        return audio[..., : int(round(req.seconds * self.sample_rate))]


def _guided_x0(dit: LiteDiT, tokens: Array | None, global_cond: Array | None, prompt_dims: Array | None,
               cfg_scale: float) -> Callable[[Array, float], Array]:
    """denoise(x, t) -> x0 of a DiT for conditioner outputs, with classifier-free guidance batched into
    one call when cfg_scale != 1 (the unconditional half: no prompt tokens, prompt-derived global dims
    zeroed), as sampling.guidance.cfg_denoiser."""
    guided = cfg_scale != 1.0
    if guided:
        tokens = None if tokens is None else np.concatenate([tokens, np.zeros_like(tokens)])
        if global_cond is not None:
            uncond = np.where(prompt_dims, 0.0, global_cond).astype(np.float32)
            global_cond = np.concatenate([global_cond, uncond])
    prep: Prepared = dit.prepare(tokens, global_cond)

    def denoise(x: Array, t: float) -> Array:
        xin = np.concatenate([x, x]) if guided else x
        tb = np.full(xin.shape[0], t, dtype=np.float32)
        x0 = xin - np.float32(t) * dit.velocity(xin, tb, prep)
        if not guided:
            return x0
        c, u = np.split(x0, 2)
        return u + np.float32(cfg_scale) * (c - u)

    return denoise


def _euler_step(x: Array, x0: Array, t: float, t_next: float) -> Array:
    """One Euler step of the rectified-flow ODE (sampling.samplers.sample_euler): v = (x - x0) / t."""
    return x + np.float32(t_next - t) * ((x - x0) / np.float32(t))


def _masked_mean(emb: Array, mask: Array) -> Array:
    """[B, T, D] tokens, [B, T] mask -> [B, D] mean over the unmasked tokens (pipeline.masked_mean)."""
    weights = mask.astype(np.float32)[..., None]
    return (emb * weights).sum(1) / np.maximum(weights.sum(1), 1.0)


def upsample_frames(x: Array, factor: int) -> Array:
    """models.envelope_prior.upsample_frames: linear interpolation with half-pixel centres, edges held."""
    n = x.shape[-1]
    source = np.maximum((np.arange(n * factor, dtype=np.float64) + 0.5) / factor - 0.5, 0.0)
    lo = np.minimum(np.floor(source).astype(np.int64), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    w = (source - lo).astype(np.float32)
    return x[..., lo] * (1 - w) + x[..., hi] * w


def _read_weights(path: Path) -> dict[str, Array]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelLoadError(f"{path} is corrupt or truncated: {e}") from None
    return {k: v.astype(np.float32, copy=False) for k, v in tensors.items()}


class _ReadLog(dict):
    """A weights dict that remembers which keys were read (see ``LiteTextToAudio._check_weights``)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Array:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Array | None = None) -> Array | None:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)


def _strip(weights: dict[str, Array], prefix: str) -> dict[str, Array]:
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
