"""Typed views of a stable-audio-tools ``model_config.json``.

The released Stable Audio Open checkpoints describe themselves with a nested JSON file. We parse
the parts we implement into dataclasses (so code reads ``cfg.dit.embed_dim`` rather than digging
through dicts) and keep the raw dict, so ``to_dict()`` writes back a file that stable-audio-tools
itself can still read. Options we do not implement fail loudly here rather than producing a model
that silently differs from the checkpoint.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

#: "rf_denoiser" is rectified flow too; stable-audio-tools uses the name for ARC post-trained models
#: (Stable Audio Open Small), whose default sampler is ping-pong without CFG.
Objective = Literal["v", "rectified_flow", "rf_denoiser", "edm"]
FLOW_OBJECTIVES = ("rectified_flow", "rf_denoiser")


class ConfigError(ValueError):
    """A model_config.json that we cannot build a model from."""


def _reject_unknown(section: str, given: dict[str, Any], supported: dict[str, Any]) -> None:
    """Fail on options that would change the network if we ignored them."""
    for key, value in given.items():
        if key in supported and value != supported[key]:
            raise ConfigError(f"{section}: option {key}={value!r} is not supported (only {supported[key]!r})")


@dataclass
class AutoencoderConfig:
    """Oobleck VAE (stable-audio-tools ``pretransform`` of type ``autoencoder``)."""

    audio_channels: int = 2
    channels: int = 128
    c_mults: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    strides: list[int] = field(default_factory=lambda: [2, 4, 4, 8, 8])
    latent_dim: int = 64
    use_snake: bool = True
    final_tanh: bool = False
    bottleneck: Literal["vae", "none"] = "vae"
    scale: float = 1.0

    @property
    def downsampling_ratio(self) -> int:
        ratio = 1
        for s in self.strides:
            ratio *= s
        return ratio

    def architecture_differences(self, other: "AutoencoderConfig") -> list[str]:
        """Names of the fields (all but the latent ``scale``) in which two autoencoders' networks differ."""
        return [f.name for f in fields(self) if f.name != "scale" and getattr(self, f.name) != getattr(other, f.name)]

    @property
    def encoder_latent_dim(self) -> int:
        # The VAE bottleneck splits the encoder output into mean and scale.
        return 2 * self.latent_dim if self.bottleneck == "vae" else self.latent_dim

    @classmethod
    def from_pretransform(cls, pre: dict[str, Any]) -> "AutoencoderConfig":
        if pre.get("type") != "autoencoder":
            raise ConfigError(f"pretransform type {pre.get('type')!r} is not supported (only 'autoencoder')")
        c = pre["config"]
        enc, dec = c["encoder"], c["decoder"]
        for part in (enc, dec):
            if part.get("type") != "oobleck":
                raise ConfigError(f"autoencoder part type {part.get('type')!r} is not supported (only 'oobleck')")
            _reject_unknown("oobleck", part["config"], {"antialias_activation": False, "use_nearest_upsample": False})
        ec, dc = enc["config"], dec["config"]
        if ec.get("c_mults") != dc.get("c_mults") or ec.get("strides") != dc.get("strides"):
            raise ConfigError("encoder and decoder must share c_mults and strides")
        bottleneck = (c.get("bottleneck") or {}).get("type", "none")
        if bottleneck not in ("vae", "none"):
            raise ConfigError(f"bottleneck {bottleneck!r} is not supported (only 'vae' or none)")
        cfg = cls(
            audio_channels=int(ec.get("in_channels", 2)),
            channels=int(ec.get("channels", 128)),
            c_mults=list(ec.get("c_mults", [1, 2, 4, 8])),
            strides=list(ec.get("strides", [2, 4, 8, 8])),
            latent_dim=int(c["latent_dim"]),
            use_snake=bool(ec.get("use_snake", False)),
            final_tanh=bool(dc.get("final_tanh", True)),
            bottleneck=bottleneck,
            scale=float(pre.get("scale", 1.0)),
        )
        if int(dc.get("latent_dim", cfg.latent_dim)) != cfg.latent_dim:
            raise ConfigError("decoder latent_dim must equal the autoencoder latent_dim")
        if int(ec.get("latent_dim", cfg.encoder_latent_dim)) != cfg.encoder_latent_dim:
            raise ConfigError(
                f"encoder latent_dim {ec.get('latent_dim')} does not match the {bottleneck} bottleneck "
                f"(expected {cfg.encoder_latent_dim})"
            )
        if "downsampling_ratio" in c and int(c["downsampling_ratio"]) != cfg.downsampling_ratio:
            raise ConfigError(
                f"downsampling_ratio {c['downsampling_ratio']} does not match the strides (product {cfg.downsampling_ratio})"
            )
        return cfg

    def to_pretransform(self, sample_rate: int) -> dict[str, Any]:
        common = {"channels": self.channels, "c_mults": self.c_mults, "strides": self.strides, "use_snake": self.use_snake}
        pre: dict[str, Any] = {
            "type": "autoencoder",
            "iterate_batch": True,
            "config": {
                "encoder": {"type": "oobleck", "config": {"in_channels": self.audio_channels, **common,
                                                          "latent_dim": self.encoder_latent_dim}},
                "decoder": {"type": "oobleck", "config": {"out_channels": self.audio_channels, **common,
                                                          "latent_dim": self.latent_dim, "final_tanh": self.final_tanh}},
                "latent_dim": self.latent_dim,
                "downsampling_ratio": self.downsampling_ratio,
                "io_channels": self.audio_channels,
            },
        }
        if self.bottleneck == "vae":
            pre["config"]["bottleneck"] = {"type": "vae"}
        if self.scale != 1.0:
            pre["scale"] = self.scale
        return pre


DEFAULT_BANDS_HZ = ((0.0, 250.0), (250.0, 1000.0), (1000.0, 4000.0), (4000.0, 24000.0))
ENERGY_FLOOR = 1e-8  # -80 dB: quieter than any band of a 16-bit signal's noise; keeps silence finite


@dataclass
class EnvelopeSpec:
    """How envelope channels (models/envelopes.py) are computed and normalised; stored in the model
    config and in latent caches.

    bands_hz: [low, high) edges of each band; one channel per band.
    hop: audio samples per frame (the autoencoder's downsampling ratio, so frames line up with latents).
    smoothing: frames of the moving average over each band's log energy.
    mean, std: per-band statistics of the training data's log energies.
    gain: the channels' standard deviation as the DiT sees them. Above 1 they keep a higher
    signal-to-noise ratio than the unit-variance latents at every noise level, so sampling settles
    the envelope (where notes fall) before the detail, and they weigh more in the training loss.
    """

    bands_hz: list[tuple[float, float]] = field(default_factory=lambda: [tuple(b) for b in DEFAULT_BANDS_HZ])
    hop: int = 64
    smoothing: int = 5
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    gain: float = 1.0

    @property
    def channels(self) -> int:
        return len(self.bands_hz)

    def validate(self) -> None:
        if not self.bands_hz:
            raise ValueError("an envelope needs at least one band")
        for lo, hi in self.bands_hz:
            if not 0.0 <= lo < hi:
                raise ValueError(f"envelope band [{lo}, {hi}) Hz is empty or negative")
        if self.hop < 1 or self.smoothing < 1:
            raise ValueError("envelope hop and smoothing must be >= 1")
        if not self.gain > 0:
            raise ValueError(f"envelope gain must be positive, got {self.gain}")
        if self.mean or self.std:
            if len(self.mean) != self.channels or len(self.std) != self.channels:
                raise ValueError(f"envelope mean/std need {self.channels} values (one per band)")
            if min(self.std) <= 0:
                raise ValueError("envelope std must be positive")

    def silence(self) -> list[float]:
        """Per band, the normalised value of silence (the energy floor): what pads a clip past its end."""
        return [(math.log(ENERGY_FLOOR) - m) / s * self.gain for m, s in zip(self.mean, self.std)]

    def to_dict(self) -> dict[str, Any]:
        return {"bands_hz": [list(b) for b in self.bands_hz], "hop": self.hop, "smoothing": self.smoothing,
                "mean": list(self.mean), "std": list(self.std), "gain": self.gain}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EnvelopeSpec":
        spec = cls(bands_hz=[(float(lo), float(hi)) for lo, hi in d["bands_hz"]], hop=int(d["hop"]),
                   smoothing=int(d.get("smoothing", 5)), mean=[float(v) for v in d.get("mean", [])],
                   std=[float(v) for v in d.get("std", [])], gain=float(d.get("gain", 1.0)))
        spec.validate()
        return spec


@dataclass
class DiTConfig:
    """stable-audio-tools ``DiffusionTransformer`` with a ``continuous_transformer`` trunk."""

    io_channels: int = 64
    embed_dim: int = 1024
    depth: int = 16
    num_heads: int = 8
    cond_token_dim: int = 768
    global_cond_dim: int = 768
    project_cond_tokens: bool = True
    project_global_cond: bool = True
    global_cond_type: Literal["prepend", "adaLN"] = "prepend"
    qk_norm: Literal["none", "ln", "l2"] = "none"
    ff_mult: float = 4.0
    final_cross_attn_ix: int = -1
    patch_size: int = 1  # latent frames folded into one token: a shorter sequence for attention
    sinusoidal_pos_emb: bool = False  # absolute sin/cos positions on top of rotary (use_sinusoidal_emb)

    @property
    def dim_heads(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def cond_embed_dim(self) -> int:
        """Width of the cross-attention context after ``to_cond_embed``."""
        return self.embed_dim if self.project_cond_tokens else self.cond_token_dim

    @classmethod
    def from_dict(cls, c: dict[str, Any]) -> "DiTConfig":
        _reject_unknown(
            "dit",
            c,
            {"input_concat_dim": 0, "prepend_cond_dim": 0, "transformer_type": "continuous_transformer",
             "timestep_cond_type": "global", "num_memory_tokens": 0, "conformer": False, "rotary_pos_emb": True,
             "use_abs_pos_emb": False, "causal": False, "layer_scale": False},
        )
        attn = dict(c.get("attn_kwargs") or {})
        _reject_unknown("dit.attn_kwargs", attn, {"differential": False, "feat_scale": False})
        ff = dict(c.get("ff_kwargs") or {})
        _reject_unknown("dit.ff_kwargs", ff, {"glu": True, "no_bias": False, "use_conv": False})
        qk_norm = attn.get("qk_norm", "none")
        if qk_norm not in ("none", "ln", "l2"):
            raise ConfigError(f"dit: qk_norm {qk_norm!r} is not supported")
        cfg = cls(
            io_channels=int(c.get("io_channels", 32)),
            embed_dim=int(c.get("embed_dim", 768)),
            depth=int(c.get("depth", 12)),
            num_heads=int(c.get("num_heads", 8)),
            cond_token_dim=int(c.get("cond_token_dim", 0)),
            global_cond_dim=int(c.get("global_cond_dim", 0)),
            project_cond_tokens=bool(c.get("project_cond_tokens", True)),
            project_global_cond=bool(c.get("project_global_cond", True)),
            global_cond_type=c.get("global_cond_type", "prepend"),
            qk_norm=qk_norm,
            ff_mult=float(ff.get("mult", 4)),
            final_cross_attn_ix=int(c.get("final_cross_attn_ix", -1)),
            patch_size=int(c.get("patch_size", 1)),
            sinusoidal_pos_emb=bool(c.get("use_sinusoidal_emb", False)),
        )
        if cfg.patch_size < 1:
            raise ConfigError(f"dit: patch_size must be >= 1, got {cfg.patch_size}")
        if cfg.embed_dim % cfg.num_heads:
            raise ConfigError(f"dit: embed_dim {cfg.embed_dim} is not divisible by num_heads {cfg.num_heads}")
        if cfg.dim_heads < 32:  # stable-audio-tools rotates max(head width / 2, 32) channels of each head
            raise ConfigError(f"dit: heads of width {cfg.dim_heads} (embed_dim {cfg.embed_dim} / num_heads "
                              f"{cfg.num_heads}) are narrower than the rotary embedding's 32 channels; use fewer heads")
        if cfg.cond_token_dim and cfg.cond_embed_dim % cfg.dim_heads:
            raise ConfigError("dit: the cross-attention context width must be a multiple of the head width")
        if cfg.global_cond_type not in ("prepend", "adaLN"):
            raise ConfigError(f"dit: global_cond_type {cfg.global_cond_type!r} is not supported")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "io_channels": self.io_channels, "embed_dim": self.embed_dim, "depth": self.depth,
            "num_heads": self.num_heads, "cond_token_dim": self.cond_token_dim,
            "global_cond_dim": self.global_cond_dim, "project_cond_tokens": self.project_cond_tokens,
            "transformer_type": "continuous_transformer",
        }
        if not self.project_global_cond:
            d["project_global_cond"] = False
        if self.global_cond_type != "prepend":
            d["global_cond_type"] = self.global_cond_type
        if self.qk_norm != "none":
            d["attn_kwargs"] = {"qk_norm": self.qk_norm}
        if self.ff_mult != 4.0:
            d["ff_kwargs"] = {"mult": self.ff_mult}
        if self.final_cross_attn_ix != -1:
            d["final_cross_attn_ix"] = self.final_cross_attn_ix
        if self.patch_size != 1:
            d["patch_size"] = self.patch_size
        if self.sinusoidal_pos_emb:
            d["use_sinusoidal_emb"] = True
        return d


@dataclass
class EnvelopePriorSpec:
    """A small text -> envelope DiT sampled before the main one (models/envelope_prior.py says why).

    dit: its architecture (io_channels = the envelope's bands; conditioned on one text conditioner's
    tokens and pooled prompt, so cond_token_dim = global_cond_dim = cond_dim).
    pool: envelope frames averaged into one of its frames (its sequence is latent_length / pool).
    prompt_id: the text conditioner it reads; nothing it reads is trained with the main DiT.
    steps, cfg_scale: its Euler steps and guidance scale at generation.
    """

    dit: DiTConfig
    pool: int = 5
    prompt_id: str = "prompt"
    steps: int = 30
    cfg_scale: float = 4.0

    def to_dict(self) -> dict[str, Any]:
        return {"dit": self.dit.to_dict(), "pool": self.pool, "prompt_id": self.prompt_id, "steps": self.steps,
                "cfg_scale": self.cfg_scale}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EnvelopePriorSpec":
        unknown = sorted(set(d) - {"dit", "pool", "prompt_id", "steps", "cfg_scale"})
        if unknown:
            raise ConfigError(f"prestissimo.envelope_prior: unknown keys {unknown}")
        if "dit" not in d:
            raise ConfigError("prestissimo.envelope_prior has no 'dit' architecture")
        spec = cls(dit=DiTConfig.from_dict(d["dit"]), pool=int(d.get("pool", 5)),
                   prompt_id=str(d.get("prompt_id", "prompt")), steps=int(d.get("steps", 30)),
                   cfg_scale=float(d.get("cfg_scale", 4.0)))
        if spec.pool < 1 or spec.steps < 1:
            raise ConfigError("prestissimo.envelope_prior: pool and steps must be >= 1")
        return spec


@dataclass
class ConditionerConfig:
    """One entry of ``conditioning.configs``: a text encoder or a number embedder."""

    id: str
    type: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class SamplingDefaults:
    """How a model is meant to be sampled; stored with the model so that an ARC model defaults to ping-pong."""

    sampler: str = "dpmpp-2m"
    steps: int = 100
    cfg_scale: float = 7.0
    eta: float = 1.0  # ping-pong's share of fresh noise at each re-noising (1: ping-pong, 0: deterministic)


@dataclass
class ModelConfig:
    """A whole conditional latent diffusion model: autoencoder + conditioners + DiT + objective."""

    sample_rate: int
    sample_size: int
    audio_channels: int
    autoencoder: AutoencoderConfig
    dit: DiTConfig
    conditioners: list[ConditionerConfig]
    cond_dim: int
    cross_attention_cond_ids: list[str]
    global_cond_ids: list[str]
    objective: Objective = "v"
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)
    edm_sigma_data: float = 0.5  # EDM preconditioning (objective "edm"): the data's standard deviation
    # Band loudness envelopes the DiT generates after the latent channels and the decoder never sees
    # (models/envelopes.py says why); None: the DiT generates latents only.
    envelope: EnvelopeSpec | None = None
    # A text -> envelope prior that lays out the envelope channels before the DiT samples the rest;
    # None: the DiT generates its envelope channels itself.
    envelope_prior: EnvelopePriorSpec | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def envelope_channels(self) -> int:
        return self.envelope.channels if self.envelope is not None else 0

    @property
    def latent_length(self) -> int:
        """Latent frames of the model's full window (``sample_size`` audio samples)."""
        return self.sample_size // self.autoencoder.downsampling_ratio

    @property
    def max_seconds(self) -> float:
        return self.sample_size / self.sample_rate

    def global_prompt_dims(self) -> list[bool]:
        """Per dim of the DiT's global vector: whether it comes from a prompt (text) conditioner, the dims
        the unconditional input of classifier-free guidance zeroes."""
        types = {c.id: c.type for c in self.conditioners}
        return [types[k] != "number" for k in self.global_cond_ids for _ in range(self.cond_dim)]

    def conditioner(self, cond_id: str) -> ConditionerConfig:
        for c in self.conditioners:
            if c.id == cond_id:
                return c
        raise KeyError(cond_id)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        if d.get("model_type") != "diffusion_cond":
            raise ConfigError(f"model_type {d.get('model_type')!r} is not supported (only 'diffusion_cond')")
        try:
            model = d["model"]
            diffusion = model["diffusion"]
            conditioning = model["conditioning"]
        except KeyError as e:
            raise ConfigError(f"model_config.json is missing the section {e.args[0]!r}") from None
        if diffusion.get("type") != "dit":
            raise ConfigError(f"diffusion type {diffusion.get('type')!r} is not supported (only 'dit')")
        objective = diffusion.get("diffusion_objective", "v")
        if objective not in ("v", "edm", *FLOW_OBJECTIVES):
            raise ConfigError(f"diffusion_objective {objective!r} is not supported "
                              f"(only 'v', 'rectified_flow', 'rf_denoiser', 'edm')")
        if diffusion.get("input_concat_ids") or diffusion.get("prepend_cond_ids"):
            raise ConfigError("input_concat_ids / prepend_cond_ids conditioning is not supported")
        if "pretransform" not in model:
            raise ConfigError("a model without an autoencoder pretransform is not supported")
        conds = [ConditionerConfig(c["id"], c["type"], dict(c.get("config", {}))) for c in conditioning["configs"]]
        ours = d.get("prestissimo", {})
        default_sampling = {  # what stable-audio-tools' own interface defaults to per objective
            "rf_denoiser": SamplingDefaults("pingpong", 8, 1.0),
            "rectified_flow": SamplingDefaults("euler", 50, 7.0),
            "v": SamplingDefaults("dpmpp-2m", 100, 7.0),
            "edm": SamplingDefaults("dpmpp-2m", 50, 4.0),
        }[objective]
        sampling = SamplingDefaults(**{**asdict(default_sampling), **ours.get("sampling", {})})
        cfg = cls(
            sample_rate=int(d["sample_rate"]),
            sample_size=int(d["sample_size"]),
            audio_channels=int(d.get("audio_channels", 2)),
            autoencoder=AutoencoderConfig.from_pretransform(model["pretransform"]),
            dit=DiTConfig.from_dict(diffusion["config"]),
            conditioners=conds,
            cond_dim=int(conditioning["cond_dim"]),
            cross_attention_cond_ids=list(diffusion.get("cross_attention_cond_ids", [])),
            global_cond_ids=list(diffusion.get("global_cond_ids", [])),
            objective=objective,
            sampling=sampling,
            edm_sigma_data=float(ours.get("edm", {}).get("sigma_data", 0.5)),
            envelope=_envelope_spec(ours.get("envelope")),
            envelope_prior=_envelope_prior_spec(ours.get("envelope_prior")),
            raw=copy.deepcopy(d),
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        ids = [c.id for c in self.conditioners]
        for cid in self.cross_attention_cond_ids + self.global_cond_ids:
            if cid not in ids:
                raise ConfigError(f"conditioning id {cid!r} is used by the DiT but not defined in conditioning.configs")
        if self.dit.io_channels != self.autoencoder.latent_dim + self.envelope_channels:
            extra = f" + {self.envelope_channels} envelope channels" if self.envelope_channels else ""
            raise ConfigError(f"DiT io_channels {self.dit.io_channels} != autoencoder latent_dim "
                              f"{self.autoencoder.latent_dim}{extra}")
        if self.sample_size % self.autoencoder.downsampling_ratio:
            raise ConfigError("sample_size must be a multiple of the autoencoder downsampling ratio")
        if self.latent_length % self.dit.patch_size:
            raise ConfigError(f"the latent length {self.latent_length} (sample_size / downsampling ratio) must be a "
                              f"multiple of the DiT patch_size {self.dit.patch_size}")
        if self.audio_channels != self.autoencoder.audio_channels:
            raise ConfigError("audio_channels differs from the autoencoder's channels")
        if self.cross_attention_cond_ids and self.dit.cond_token_dim != self.cond_dim:
            raise ConfigError(f"DiT cond_token_dim {self.dit.cond_token_dim} != conditioning cond_dim {self.cond_dim}")
        expected_global = self.cond_dim * len(self.global_cond_ids)
        if self.global_cond_ids and self.dit.global_cond_dim != expected_global:
            raise ConfigError(
                f"DiT global_cond_dim {self.dit.global_cond_dim} != {len(self.global_cond_ids)} x cond_dim {self.cond_dim}"
            )
        if self.envelope_prior is not None:
            self._validate_envelope_prior(self.envelope_prior)

    def _validate_envelope_prior(self, prior: EnvelopePriorSpec) -> None:
        where = "prestissimo.envelope_prior"
        if self.envelope is None:
            raise ConfigError(f"{where}: the model has no envelope channels for a prior to lay out")
        if prior.dit.io_channels != self.envelope.channels:
            raise ConfigError(f"{where}: io_channels {prior.dit.io_channels} != the envelope's "
                              f"{self.envelope.channels} bands")
        types = {c.id: c.type for c in self.conditioners}
        if types.get(prior.prompt_id, "number") == "number":
            raise ConfigError(f"{where}: prompt_id {prior.prompt_id!r} is not a text conditioner of the model")
        if prior.dit.cond_token_dim != self.cond_dim or prior.dit.global_cond_dim != self.cond_dim:
            raise ConfigError(f"{where}: cond_token_dim and global_cond_dim must equal cond_dim {self.cond_dim}")
        if self.latent_length % (prior.pool * prior.dit.patch_size):
            raise ConfigError(f"{where}: the latent length {self.latent_length} must be a multiple of pool "
                              f"{prior.pool} x patch_size {prior.dit.patch_size}")

    def to_dict(self) -> dict[str, Any]:
        """A stable-audio-tools compatible dict; unknown sections of the original file are kept."""
        d = copy.deepcopy(self.raw)
        d.update(model_type="diffusion_cond", sample_size=self.sample_size, sample_rate=self.sample_rate,
                 audio_channels=self.audio_channels)
        model = d.setdefault("model", {})
        model["pretransform"] = self.autoencoder.to_pretransform(self.sample_rate)
        model["conditioning"] = {
            **model.get("conditioning", {}),
            "configs": [{"id": c.id, "type": c.type, "config": c.config} for c in self.conditioners],
            "cond_dim": self.cond_dim,
        }
        diffusion = model.setdefault("diffusion", {})
        diffusion.update(
            type="dit", diffusion_objective=self.objective, config=self.dit.to_dict(),
            cross_attention_cond_ids=self.cross_attention_cond_ids, global_cond_ids=self.global_cond_ids,
        )
        model["io_channels"] = self.dit.io_channels
        d["prestissimo"] = {**d.get("prestissimo", {}), "sampling": asdict(self.sampling)}
        if self.objective == "edm":
            d["prestissimo"]["edm"] = {"sigma_data": self.edm_sigma_data}
        d["prestissimo"].pop("envelope", None)
        if self.envelope is not None:
            d["prestissimo"]["envelope"] = self.envelope.to_dict()
        d["prestissimo"].pop("envelope_prior", None)
        if self.envelope_prior is not None:
            d["prestissimo"]["envelope_prior"] = self.envelope_prior.to_dict()
        return d


def _envelope_spec(d: dict[str, Any] | None) -> EnvelopeSpec | None:
    if d is None:
        return None
    try:
        spec = EnvelopeSpec.from_dict(d)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"prestissimo.envelope: {e}") from None
    if not spec.mean:
        raise ConfigError("prestissimo.envelope has no mean/std: the model cannot normalise audio it encodes")
    return spec


def _envelope_prior_spec(d: dict[str, Any] | None) -> EnvelopePriorSpec | None:
    if d is None:
        return None
    try:
        return EnvelopePriorSpec.from_dict(d)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"prestissimo.envelope_prior: {e}") from None
