"""Oobleck autoencoder training: multi-resolution STFT reconstruction, KL, and (after a warm-up)
hinge adversarial + feature-matching terms from a multi-scale STFT discriminator."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from prestissimo.models.autoencoder import OobleckAutoencoder, ResidualUnit, WNConv1d, WNConvTranspose1d
from prestissimo.models.autoencoder_io import load_matching_autoencoder, save_autoencoder
from prestissimo.models.config import AutoencoderConfig, ConfigError
from prestissimo.training.config import LoopConfig, OptimizerConfig
from prestissimo.training.loop import Batch, Phase, RunLogger

#: Architectures from test size to Stable Audio Open's released VAE.
AUTOENCODER_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"channels": 16, "c_mults": [1, 2], "strides": [2, 4], "latent_dim": 8, "sample_rate": 8000},
    "small": {"channels": 32, "c_mults": [1, 2, 4, 8], "strides": [2, 4, 4, 8], "latent_dim": 32, "sample_rate": 16000},
    "sao": {"channels": 128, "c_mults": [1, 2, 4, 8, 16], "strides": [2, 4, 4, 8, 8], "latent_dim": 64,
            "sample_rate": 44100},
}


@dataclass
class LossWeights:
    """stable-audio-tools' Oobleck recipe: mrstft 1, KL 1e-4, adversarial 0.1, feature matching 5."""

    mrstft: float = 1.0
    kl: float = 1e-4
    adversarial: float = 0.1
    feature_matching: float = 5.0
    balance: float = 0.0  # not in stable-audio-tools: see stereo_balance_loss


@dataclass
class AETrainConfig:
    preset: str = "tiny"
    audio_channels: int = 2
    overrides: dict[str, Any] = field(default_factory=dict)  # any AUTOENCODER_PRESETS key
    seconds: float = 0.5  # training crop
    weights: LossWeights = field(default_factory=LossWeights)
    stft_sizes: list[int] = field(default_factory=lambda: [2048, 1024, 512, 256, 128, 64])
    stft_dynamic_range_db: float = 60.0
    stft_log_weight: float = 1.0  # log-magnitude term vs spectral convergence (see multi_resolution_stft_loss)
    disc_stft_sizes: list[int] = field(default_factory=lambda: [1024, 512, 256])
    disc_channels: int = 32
    adversarial_start: int = 2000  # steps of reconstruction-only warm-up before the GAN terms
    # Decoder fine-tuning (see AutoencoderTask.reconstruct): start from a trained autoencoder directory,
    # keep its encoder (so latents cached with it, and every DiT trained on them, stay valid) and teach
    # the decoder to map latents that are slightly off to clean audio.
    init_from: str | None = None
    train_encoder: bool = True
    latent_noise: float = 0.0  # largest extra latent noise, in units of the batch's latent std
    eval_clips: int = 4
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(ema_decay=0.0))
    optim: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-4, betas=(0.8, 0.99)))
    disc_optim: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-4, betas=(0.8, 0.99)))

    def architecture(self) -> tuple[AutoencoderConfig, int]:
        if self.preset not in AUTOENCODER_PRESETS:
            raise ValueError(f"unknown autoencoder preset {self.preset!r} (choose from {sorted(AUTOENCODER_PRESETS)})")
        spec = {**AUTOENCODER_PRESETS[self.preset], **self.overrides}
        unknown = sorted(set(spec) - set(AUTOENCODER_PRESETS["tiny"]))
        if unknown:
            raise ValueError(f"unknown autoencoder overrides {unknown}")
        if not 0.0 <= self.latent_noise <= 10.0:
            raise ValueError(f"latent_noise must be in [0, 10] (units of the latents' std), got {self.latent_noise}")
        if not self.train_encoder and self.init_from is None:
            raise ValueError("train_encoder false needs init_from: a frozen encoder must come from a trained "
                             "autoencoder")
        if self.stft_log_weight < 0:
            raise ValueError(f"stft_log_weight must be >= 0, got {self.stft_log_weight}")
        if self.weights.balance < 0:
            raise ValueError(f"weights.balance must be >= 0, got {self.weights.balance}")
        sample_rate = int(spec.pop("sample_rate"))
        if any(stride % 2 for stride in spec["strides"]):
            raise ValueError(f"strides must be even (got {spec['strides']}): Oobleck's kernel 2*stride and padding "
                             "ceil(stride/2) keep encode/decode lengths exact only for even strides")
        return AutoencoderConfig(audio_channels=self.audio_channels, bottleneck="vae", **spec), sample_rate


def initialize_for_training(ae: OobleckAutoencoder, residual_gain: float = 0.1,
                            posterior_scale_bias: float = -5.0, output_gain: float = 0.01) -> None:
    """Re-initialise an Oobleck autoencoder for training from scratch.

    PyTorch's default conv init shrinks the signal by about sqrt(3) per layer while the biases and
    Snake's sin^2 offset do not shrink, so a fresh deep decoder's output is mostly a constant: two
    random latents decode 7% apart relative to the output's size (the recipe's 4-block
    autoencoder). Here each convolution preserves variance (weights ~ N(0, 1 / fan_in), biases
    zero; they decode 110% apart), each residual branch starts at ``residual_gain`` so blocks
    start near identity, and the VAE's posterior std starts at softplus(``posterior_scale_bias``)
    so the decoder first sees the encoding rather than noise. The output convolution starts at
    ``output_gain``: audio sits 20-40 dB below full scale, and a decoder that starts at full scale
    first learns to be quiet by shrinking its latents under the posterior noise (seen: latent std
    0.033 -> 0.005 in 25 steps, after which every input decoded alike).
    """
    residual_outputs = {id(unit.layers[-1]) for unit in ae.modules() if isinstance(unit, ResidualUnit)}
    output = ae.decoder.layers[-2]  # the last convolution (a Tanh or Identity follows it)
    with torch.no_grad():
        for module in ae.modules():
            if not isinstance(module, (WNConv1d, WNConvTranspose1d)):
                continue
            v = module.weight_v
            if isinstance(module, WNConv1d):
                fan_in = v.shape[1] * v.shape[2]
            else:  # [in, out, k]: each output sample sees k / stride taps of every input channel
                fan_in = v.shape[0] * v.shape[2] / module.stride
            gain = residual_gain if id(module) in residual_outputs else output_gain if module is output else 1.0
            # v's scale sets how fast Adam turns the weight's direction (a step moves each entry by
            # ~lr, so the relative turn is lr / |entry|): entries ~ N(0, 1 / fan_in) turn it as fast
            # as a plain conv with PyTorch's default init; unit entries turn it sqrt(fan_in) times slower.
            nn.init.normal_(v, std=fan_in**-0.5)
            # weight = g * v / ||v|| with ||v|| over the v[0].numel() entries of a row
            module.weight_g.fill_(gain * (v[0].numel() / fan_in) ** 0.5)
            if module.bias is not None:
                module.bias.zero_()
        if ae.cfg.bottleneck == "vae":
            head = ae.encoder.layers[-1]
            head.bias[head.bias.shape[0] // 2:] = posterior_scale_bias


def signal_magnitudes(audio: torch.Tensor, n_fft: int) -> torch.Tensor:
    """|STFT| [B, signal, freq, frames] of each channel of [B, C, T] audio, or for stereo of mid (L+R),
    side (L-R), left and right; Hann window, hop n_fft / 4, float32 for stable gradients.

    The STFT is linear, so mid and side come from the channels' spectra: two transforms, not four.
    """
    b, c, t = audio.shape
    window = torch.hann_window(n_fft, device=audio.device)
    spec = torch.stft(audio.float().reshape(b * c, t), n_fft, n_fft // 4, window=window, return_complex=True)
    spec = spec.reshape(b, c, *spec.shape[1:])
    if c == 2:
        left, right = spec[:, 0], spec[:, 1]
        spec = torch.stack([left + right, left - right, left, right], dim=1)
    return spec.abs()


def multi_resolution_stft_loss(pred: torch.Tensor, target: torch.Tensor, sizes: list[int],
                               dynamic_range_db: float = 60.0, log_weight: float = 1.0) -> torch.Tensor:
    """Mean over resolutions of spectral convergence + log-magnitude L1, on the mid (L+R), side
    (L-R), left and right signals of stereo audio, per channel for mono. Resolutions longer than
    the clip are skipped. Convergence is taken over the four together, because the side of a
    centred clip is exactly silent.

    Mid and side alone (stable-audio-tools' sum-and-difference loss) cannot tell left from right:
    |STFT(L-R)| = |STFT(R-L)|, so a mirrored clip costs nothing (its GAN sees the channels; a
    GAN-free run has nothing else that does).

    Log magnitudes are compared over ``dynamic_range_db`` below each clip's spectral peak (the
    floor is shared by mid and side and by prediction and target), like a spectrogram display.
    With a fixed tiny floor, synthetic audio's digital silence (and the exactly silent side of a
    centred clip) makes the loss mostly about a reconstruction's noise floor: on synthbench, white
    noise 40 dB down cost more than halving the level, and an Oobleck autoencoder trained on it
    settled on one input-independent output.

    Both terms are taken per clip and then averaged, and the log error is averaged over the bins
    above the floor in either signal, not over all bins. A tone fills a few percent of a
    spectrogram: pooled over the batch (or over all bins), a batch's loud or noisy clips outweighed
    its quiet tonal ones, near-silence was the cheap answer for a tone, and an autoencoder trained
    on synthbench returned pure sines 35 dB too quiet while it reconstructed noise and drums.

    ``log_weight`` scales the log term against spectral convergence (1 in stable-audio-tools). The
    log term weighs every faint bin like a loud one, so a fresh decoder's broadband artefacts cost
    more than missing the content, and from scratch it pulls the output to silence: with weight 1
    (or 0.1) a small Oobleck could not overfit four sines in 100 steps; with 0.02 or 0 it matched
    their level and pan.
    """
    total, count = pred.new_zeros((), dtype=torch.float32), 0
    for n_fft in sizes:
        if n_fft > pred.shape[-1]:
            continue
        predicted, reference = signal_magnitudes(pred, n_fft), signal_magnitudes(target, n_fft)
        per_clip = (1, 2, 3)
        convergence = (torch.linalg.vector_norm(reference - predicted, dim=per_clip)
                       / torch.linalg.vector_norm(reference, dim=per_clip).clamp_min(1e-7))
        peak = reference.amax(dim=per_clip, keepdim=True)
        floor = (peak * 10.0 ** (-dynamic_range_db / 20.0)).clamp_min(1e-7)
        error = (predicted.maximum(floor).log() - reference.maximum(floor).log()).abs()
        active = ((predicted > floor) | (reference > floor)).float()
        log_error = (error * active).sum(dim=per_clip) / active.sum(dim=per_clip).clamp_min(1.0)
        total = total + (convergence + log_weight * log_error).mean()
        count += 1
    if count == 0:
        raise ValueError(f"clip of {pred.shape[-1]} samples is shorter than every STFT size {sizes}")
    return total / count


def stereo_balance_loss(pred: torch.Tensor, target: torch.Tensor, floor: float = 1e-8) -> torch.Tensor:
    """Mean over clips of |balance(pred) - balance(target)| / 10 dB, balance = 10 log10(E_left / E_right)
    (energies floored 80 dB below full scale); zero for mono.

    A direct, gain-invariant signal for stereo position: a GAN-free autoencoder trained on
    synthbench with STFT terms on mid, side, left and right still decoded every clip centred
    after 3000 steps.
    """
    if pred.shape[1] != 2:
        return pred.new_zeros((), dtype=torch.float32)

    def balance_db(x: torch.Tensor) -> torch.Tensor:
        energy = x.float().pow(2).mean(dim=-1) + floor  # [B, 2]
        return 10.0 * torch.log10(energy[:, 0] / energy[:, 1])

    return ((balance_db(pred) - balance_db(target)).abs() / 10.0).mean()


def kl_divergence(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std^2) || N(0, 1)), averaged over elements."""
    var = std**2
    return 0.5 * (mean**2 + var - var.log() - 1).mean()


class STFTDiscriminator(nn.Module):
    """One scale: 2D convolutions over the complex STFT (real/imag of each channel as inputs)."""

    def __init__(self, audio_channels: int, n_fft: int, channels: int = 32):
        super().__init__()
        self.n_fft = n_fft
        c = channels
        norm = nn.utils.parametrizations.weight_norm
        self.convs = nn.ModuleList([
            norm(nn.Conv2d(2 * audio_channels, c, (3, 9), padding=(1, 4))),
            norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), dilation=(1, 1), padding=(1, 4))),
            norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), dilation=(2, 1), padding=(2, 4))),
            norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), dilation=(4, 1), padding=(4, 4))),
            norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))),
        ])
        self.out = norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, ch, t = audio.shape
        window = torch.hann_window(self.n_fft, device=audio.device)
        spec = torch.stft(audio.reshape(b * ch, t).float(), self.n_fft, self.n_fft // 4, window=window,
                          return_complex=True)
        x = torch.view_as_real(spec).reshape(b, ch, *spec.shape[1:], 2)
        x = x.permute(0, 1, 4, 3, 2).reshape(b, 2 * ch, spec.shape[2], spec.shape[1])  # [B, 2C, time, freq]
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            features.append(x)
        return self.out(x), features


class MultiScaleSTFTDiscriminator(nn.Module):
    def __init__(self, audio_channels: int, sizes: list[int], channels: int = 32):
        super().__init__()
        self.scales = nn.ModuleList([STFTDiscriminator(audio_channels, n, channels) for n in sizes])

    def forward(self, audio: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(audio) for d in self.scales if d.n_fft <= audio.shape[-1]]


def hinge_discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake)) / len(real)


def hinge_generator_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    return sum(F.relu(1 - f).mean() for f in fake) / len(fake)


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """L1 between discriminator features of real and reconstructed audio, relative to the real
    features' scale, averaged over layers and scales."""
    terms = [F.l1_loss(f, r.detach()) / r.detach().abs().mean().clamp_min(1e-5)
             for rs, fs in zip(real, fake) for r, f in zip(rs, fs)]
    return sum(terms) / len(terms)


class AutoencoderTask:
    def __init__(self, cfg: AETrainConfig, run_dir: Path, eval_audio: torch.Tensor | None = None):
        self.cfg = cfg
        self.run_dir = run_dir
        ae_cfg, self.sample_rate = cfg.architecture()
        torch.manual_seed(cfg.loop.seed)
        self.ae = OobleckAutoencoder(ae_cfg)
        if cfg.init_from is None:
            initialize_for_training(self.ae)
        else:
            try:
                start = load_matching_autoencoder(cfg.init_from, ae_cfg, self.sample_rate)
            except ConfigError as e:
                raise ConfigError(f"init_from: {e} (set preset/overrides to its architecture)") from None
            self.ae.load_state_dict(start.state_dict())
        self.ae.encoder.requires_grad_(cfg.train_encoder)
        self.disc = MultiScaleSTFTDiscriminator(cfg.audio_channels, cfg.disc_stft_sizes, cfg.disc_channels)
        self.ae.to(cfg.loop.device)
        self.disc.to(cfg.loop.device)
        self.eval_audio = eval_audio

    @property
    def crop_samples(self) -> int:
        ratio = self.ae.downsampling_ratio
        return max(ratio, int(round(self.cfg.seconds * self.sample_rate)) // ratio * ratio)

    def modules(self) -> dict[str, nn.Module]:
        return {"autoencoder": self.ae, "discriminator": self.disc}

    def ema_targets(self) -> dict[str, nn.Module]:
        return {"autoencoder": self.ae}

    def adversarial(self, step: int) -> bool:
        return step >= self.cfg.adversarial_start

    def phases(self) -> list[Phase]:
        trained = self.ae if self.cfg.train_encoder else self.ae.decoder
        return [Phase("autoencoder", list(trained.parameters()), self.generator_loss, self.cfg.optim),
                Phase("discriminator", list(self.disc.parameters()), self.discriminator_loss, self.cfg.disc_optim,
                      active=self.adversarial)]

    def reconstruct(self, audio: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode a posterior sample, plus (with ``latent_noise``) Gaussian noise of a std drawn per clip
        from U(0, latent_noise) x the batch's latent std.

        Why the extra noise: a decoder trained only on exact encodings is brittle. The recipe's synthbench
        decoder turned latents off by 4% of their std into audio whose tones read as noise (held-out
        tonal clips called tonal: 100% reconstructed, 50% with that noise), and a DiT's samples are at
        least that far off. Trained on a neighbourhood of each encoding, it decodes near misses as tones,
        at a cost in fidelity: with U(0, 0.5) the same decoder also blurred drum onsets (docs/training.md,
        "Family: what makes a generated tone read as noise").
        """
        h = self.ae.encoder(audio)  # a frozen encoder's parameters do not require grad: no graph is kept
        mean, scale = h.chunk(2, dim=1)
        std = F.softplus(scale) + 1e-4
        z = mean + std * batch.randn(mean.shape[1:], device=mean.device, dtype=mean.dtype)
        if self.cfg.latent_noise > 0:
            level = batch.rand(stream=2, device=mean.device).to(mean.dtype) * self.cfg.latent_noise
            spread = mean.detach().std()
            z = z + (level * spread)[:, None, None] * batch.randn(mean.shape[1:], stream=3, device=mean.device,
                                                                    dtype=mean.dtype)
        return self.ae.decoder(z), mean, std

    def generator_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        w = self.cfg.weights
        audio = batch.data["audio"]
        recon, mean, std = self.reconstruct(audio, batch)
        mrstft = multi_resolution_stft_loss(recon, audio, self.cfg.stft_sizes, self.cfg.stft_dynamic_range_db,
                                            self.cfg.stft_log_weight)
        kl = kl_divergence(mean, std)
        loss = w.mrstft * mrstft + w.kl * kl
        logs = {"mrstft": float(mrstft.detach()), "kl": float(kl.detach())}
        if w.balance:
            balance = stereo_balance_loss(recon, audio)
            loss = loss + w.balance * balance
            logs["balance"] = float(balance.detach())
        if self.adversarial(batch.step):
            self.disc.requires_grad_(False)
            fake = self.disc(recon)
            with torch.no_grad():
                real = self.disc(audio)
            self.disc.requires_grad_(True)
            adv = hinge_generator_loss([f[0] for f in fake])
            fm = feature_matching_loss([r[1] for r in real], [f[1] for f in fake])
            loss = loss + w.adversarial * adv + w.feature_matching * fm
            logs.update(adversarial=float(adv.detach()), feature_matching=float(fm.detach()))
        logs["loss"] = float(loss.detach())
        return loss, logs

    def discriminator_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        audio = batch.data["audio"]
        with torch.no_grad():
            recon, _, _ = self.reconstruct(audio, batch)  # the same draw as the generator phase
        loss = hinge_discriminator_loss([r[0] for r in self.disc(audio)], [f[0] for f in self.disc(recon)])
        return loss, {"loss": float(loss.detach())}

    def export(self, ema: dict[str, nn.Module], out_dir: Path) -> Path:
        model = copy.deepcopy(ema.get("autoencoder", self.ae)).eval().cpu()
        return save_autoencoder(model, self.sample_rate, self.crop_samples, out_dir)

    @torch.no_grad()
    def evaluate(self, step: int, ema: dict[str, nn.Module], logger: RunLogger) -> dict[str, float]:
        from prestissimo.evaluation.plots import spectrogram_grid

        out = self.export(ema, self.run_dir / "model")
        if self.eval_audio is None:
            return {}
        model = ema.get("autoencoder", self.ae)
        was_training = model.training
        model.eval()
        ratio = model.downsampling_ratio
        audio = self.eval_audio[..., : self.eval_audio.shape[-1] // ratio * ratio]
        recon = model.decode(model.encode(audio.to(self.cfg.loop.device))).cpu()
        model.train(was_training)
        score = float(multi_resolution_stft_loss(recon, audio, self.cfg.stft_sizes, self.cfg.stft_dynamic_range_db,
                                                 self.cfg.stft_log_weight))
        clips, titles = [], []
        for i, (a, r) in enumerate(zip(audio, recon)):
            clips += [a.numpy(), r.numpy()]
            titles += [f"clip {i}: original", f"clip {i}: reconstruction"]
            logger.audio(step, f"reconstruction/{i}", r, self.sample_rate)
        png = spectrogram_grid(clips, self.sample_rate, titles, out / "reconstructions.png", columns=2)
        logger.image(step, "reconstructions", png)
        return {"mrstft": score}
