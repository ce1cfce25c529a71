"""Audio embedding backends for the distribution and diversity metrics (FD, MMD, CCDS, CLAP score).

Every backend maps clips [C, T] (mono or stereo, any length) at one sample rate to float64 [N, D].
``logmel`` is built in and needs nothing; ``clap`` loads a LAION-CLAP checkpoint from a local
directory. PANNs, VGGish and OpenL3 have no adapter: their PyPI packages download weights (or
labels) at import or load time and depend on librosa/TensorFlow, so they cannot run offline here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from prestissimo.data.audio import resample
from prestissimo.data.spectral import log_mel_spectrogram


class EmbeddingUnavailable(RuntimeError):
    """An embedding model's weights are not on this machine; the message says what to fetch and where."""


@runtime_checkable
class EmbeddingBackend(Protocol):
    name: str

    def embed(self, clips: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """Clips [C, T] at ``sample_rate`` -> float64 [N, D]."""
        ...


def _as_clip(clip: np.ndarray, index: int) -> np.ndarray:
    """[T] or [C, T] -> float32 [C, T]; rejects empty, non-finite and > 2-channel clips."""
    x = np.asarray(clip, dtype=np.float32)
    x = x[None, :] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] not in (1, 2):
        raise ValueError(f"clip {index}: expected [1 or 2 channels, samples], got shape {np.shape(clip)}")
    if x.shape[1] == 0:
        raise ValueError(f"clip {index} is empty")
    if not np.isfinite(x).all():
        raise ValueError(f"clip {index} contains NaN or infinite samples")
    return x


class LogMelEmbedding:
    """Summary statistics of a log-mel spectrogram: a cheap, deterministic, download-free proxy.

    It is NOT a learned perceptual embedding: distances in it follow spectral envelope, loudness and
    their movement over time, not semantics, so FD/MMD on it are for smoke tests, regressions and
    relative comparisons on one setup, never to compare with published FAD numbers.

    Front end: resample to 16 kHz; Hann window of n_fft = 512 (32 ms), hop 160 (10 ms); 64 Slaney
    mel bands over 0-8 kHz; natural log of max(power, 1e-5). Clip vector (dimension 5 * n_mels = 320),
    on the mid channel (L + R) / 2 (the channel itself for mono):
      [0:64)    mean over frames of each band's log-mel,
      [64:128)  standard deviation over frames of each band,
      [128:192) mean over time of the frame-to-frame difference (delta) of each band,
      [192:256) standard deviation of that delta (how fast each band moves),
      [256:320) stereo: mean over frames of log E_left - log E_right per band (0 for mono), so that
                panning moves the embedding.
    Deltas are 0 for a clip of a single frame.
    """

    name = "logmel"
    sample_rate = 16000
    n_fft = 512
    hop_length = 160

    def __init__(self, n_mels: int = 64):
        self.n_mels = int(n_mels)

    @property
    def dim(self) -> int:
        return 5 * self.n_mels

    def _clip_vector(self, clip: np.ndarray, sample_rate: int) -> np.ndarray:
        x = resample(clip, sample_rate, self.sample_rate).astype(np.float64)
        channels = np.concatenate([x.mean(axis=0, keepdims=True), x]) if x.shape[0] == 2 else x
        logmel = log_mel_spectrogram(
            torch.from_numpy(channels), self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
            n_mels=self.n_mels,
        ).numpy()
        mid = logmel[0]
        delta = np.diff(mid, axis=-1)
        zeros = np.zeros(self.n_mels)
        delta_mean, delta_std = (delta.mean(axis=-1), delta.std(axis=-1)) if delta.shape[-1] else (zeros, zeros)
        stereo = (logmel[1] - logmel[2]).mean(axis=-1) if x.shape[0] == 2 else zeros
        return np.concatenate([mid.mean(axis=-1), mid.std(axis=-1), delta_mean, delta_std, stereo])

    def embed(self, clips: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        vectors = [self._clip_vector(_as_clip(c, i), sample_rate) for i, c in enumerate(clips)]
        return np.stack(vectors) if vectors else np.zeros((0, self.dim))


_CLAP_HOWTO = (
    "Download a Hugging Face CLAP checkpoint on a machine with internet access, e.g. laion/clap-htsat-unfused "
    "(or laion/clap-htsat-fused for feature fusion on clips longer than 10 s), with\n"
    "  from transformers import ClapModel, ClapProcessor\n"
    "  ClapModel.from_pretrained('laion/clap-htsat-unfused').save_pretrained(DIR)\n"
    "  ClapProcessor.from_pretrained('laion/clap-htsat-unfused').save_pretrained(DIR)\n"
    "(or `huggingface-cli download laion/clap-htsat-unfused --local-dir DIR`), copy DIR here and pass clap:DIR."
)

_CLAP_REQUIRED = {
    "model config": ("config.json",),
    "model weights": ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                      "pytorch_model.bin.index.json"),
    "feature extractor config": ("preprocessor_config.json", "processor_config.json"),
    "tokenizer": ("tokenizer.json", "vocab.json"),
}


def _check_clap_dir(model_dir: Path) -> None:
    if not model_dir.is_dir():
        raise EmbeddingUnavailable(f"CLAP model directory {model_dir} does not exist. {_CLAP_HOWTO}")
    missing = [
        f"{what} ({' or '.join(names)})"
        for what, names in _CLAP_REQUIRED.items()
        if not any((model_dir / n).is_file() for n in names)
    ]
    if missing:
        raise EmbeddingUnavailable(f"CLAP model directory {model_dir} lacks {'; '.join(missing)}. {_CLAP_HOWTO}")


@contextlib.contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG for a block and restore the caller's state afterwards.

    ClapFeatureExtractor crops long clips at random offsets with np.random (rand_trunc and fusion);
    a fixed seed makes embeddings reproducible without disturbing anyone else's random stream.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _pooled(output: object) -> torch.Tensor:
    """get_*_features returns a tensor in transformers 4 and a ModelOutput (pooler_output) in 5."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise TypeError(f"unexpected CLAP feature output of type {type(output).__name__}")


def _unit_rows(x: torch.Tensor) -> np.ndarray:
    x = x.detach().to(torch.float64).cpu()
    return torch.nn.functional.normalize(x, dim=-1).numpy()


class ClapEmbedding:
    """LAION-CLAP audio and text embeddings (transformers ClapModel) from a local directory only.

    Audio is mixed to mono, resampled to the feature extractor's rate (48 kHz) and embedded with
    get_audio_features; text with get_text_features; both L2-normalised. Clips longer than the
    extractor's max_length_s (10 s) are cropped (unfused model) or fused (fused model) as the
    extractor does, with numpy's RNG seeded for repeatability. Unlike stable-audio-metrics it does not
    peak-normalise to -1 dB nor round-trip through int16, so scores are close to, not identical to, theirs.
    """

    def __init__(self, model_dir: str | Path, device: str | torch.device = "cpu", batch_size: int = 8,
                 seed: int = 0):
        self.model_dir = Path(model_dir)
        _check_clap_dir(self.model_dir)
        try:
            from transformers import ClapModel, ClapProcessor

            self.processor = ClapProcessor.from_pretrained(self.model_dir, local_files_only=True)
            self.model = ClapModel.from_pretrained(self.model_dir, local_files_only=True).eval().to(device)
        except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
            raise EmbeddingUnavailable(f"cannot load CLAP from {self.model_dir}: {exc}. {_CLAP_HOWTO}") from exc
        self.name = f"clap:{self.model_dir.name}"
        self.device = torch.device(device)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.sample_rate = int(self.processor.feature_extractor.sampling_rate)
        # the extractor's own default may not match the weights (4 fused mel views vs 1 plain one)
        self.truncation = "fusion" if self.model.config.audio_config.enable_fusion else "rand_trunc"

    @torch.no_grad()
    def embed(self, clips: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        mono = [resample(_as_clip(c, i).mean(axis=0), sample_rate, self.sample_rate) for i, c in enumerate(clips)]
        batches = []
        with _numpy_seed(self.seed):
            for start in range(0, len(mono), self.batch_size):
                inputs = self.processor.feature_extractor(
                    mono[start : start + self.batch_size], sampling_rate=self.sample_rate,
                    truncation=self.truncation, return_tensors="pt",
                )
                inputs = {k: v.to(self.device) for k, v in inputs.items()}
                batches.append(_unit_rows(_pooled(self.model.get_audio_features(**inputs))))
        return np.concatenate(batches) if batches else np.zeros((0, self.model.config.projection_dim))

    @torch.no_grad()
    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Prompts -> unit-norm float64 [N, D] in the same space as :meth:`embed`."""
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.model.config.projection_dim))
        tokenizer = self.processor.tokenizer
        # RoBERTa positions start after the padding index, hence the 2 reserved slots
        max_length = min(int(tokenizer.model_max_length), self.model.config.text_config.max_position_embeddings - 2)
        batches = []
        for start in range(0, len(texts), self.batch_size):
            tokens = tokenizer(texts[start : start + self.batch_size], padding=True, truncation=True,
                               max_length=max_length, return_tensors="pt")
            tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
            batches.append(_unit_rows(_pooled(self.model.get_text_features(**tokens))))
        return np.concatenate(batches)


BACKEND_SPECS: tuple[str, ...] = ("logmel", "clap:<model_dir>")


def create_embedding_backend(spec: str = "logmel") -> EmbeddingBackend:
    """Backend from a short spec string (command lines, configs): "logmel" or "clap:/path/to/dir"."""
    kind, _, arg = spec.strip().partition(":")
    if kind in ("", "logmel") and not arg:
        return LogMelEmbedding()
    if kind == "clap":
        if not arg:
            raise ValueError("the clap backend needs a local model directory: clap:/path/to/dir")
        return ClapEmbedding(arg)
    raise ValueError(f"unknown embedding backend {spec!r}; valid: {', '.join(BACKEND_SPECS)}")
