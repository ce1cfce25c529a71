"""Latent caches: run the autoencoder once over a dataset (`prestissimo encode`) so DiT training
never touches audio. Layout: shard_00000.safetensors ([N, D, L] float32 "latents") + latents.json
(rows with caption, shard, offset, frames; frames_per_second; latent_scale = the latents' std, by
which training divides so the DiT sees unit-variance latents). With envelopes, each shard also holds
[N, bands, L] "envelopes" (band log energies, models/envelopes.py) and the index their EnvelopeSpec with
the data's per-band statistics; items then carry latents and normalised envelopes stacked."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from prestissimo.data.datasets import AudioDataset, AudioSpec
from prestissimo.data.manifest import ManifestEntry
from prestissimo.models.autoencoder import OobleckAutoencoder
from prestissimo.models.config import EnvelopeSpec
from prestissimo.models.envelopes import band_log_energies, normalise, silence
from prestissimo.models.loading import atomic_write_bytes

LATENT_INDEX = "latents.json"


@torch.no_grad()
def encode_dataset(ae: OobleckAutoencoder, sample_rate: int, entries: Sequence[ManifestEntry], out_dir: str | Path,
                   seconds: float, batch_size: int = 8, shard_size: int = 1024, progress: bool = True,
                   envelope: EnvelopeSpec | None = None) -> Path:
    """Encode every usable clip (first `seconds`, zero-padded) with the VAE mean, stored unscaled
    whatever the autoencoder's pretransform scale; unusable files are skipped and counted in the index.
    With ``envelope`` (its bands; hop and statistics are set here) the band envelopes are stored too."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ratio = ae.downsampling_ratio
    spec = AudioSpec(sample_rate, ae.cfg.audio_channels, max(seconds, ratio / sample_rate))
    data = AudioDataset(entries, spec, random_crop=False)
    frames = spec.length // ratio
    rows: list[dict[str, Any]] = []
    shard: list[torch.Tensor] = []
    shard_env: list[torch.Tensor] = []
    shard_id = 0
    sum_sq, count = 0.0, 0
    if envelope is not None:
        envelope = EnvelopeSpec(bands_hz=list(envelope.bands_hz), hop=ratio, smoothing=envelope.smoothing)
        envelope.validate()
        env_sum = torch.zeros(envelope.channels, dtype=torch.float64)
        env_sq = torch.zeros(envelope.channels, dtype=torch.float64)
        env_count = 0

    def flush() -> None:
        nonlocal shard, shard_env, shard_id
        if shard:
            name = f"shard_{shard_id:05d}.safetensors"
            tensors = {"latents": torch.cat(shard).contiguous()}
            if shard_env:
                tensors["envelopes"] = torch.cat(shard_env).contiguous()
            save_file(tensors, str(out / name))
            shard, shard_env, shard_id = [], [], shard_id + 1

    rng = np.random.default_rng(0)
    bar = tqdm(total=len(data), desc="encoding", unit="clip", disable=not progress)
    for start in range(0, len(data), batch_size):
        items = [(i, data.get(i, rng)) for i in range(start, min(len(data), start + batch_size))]
        items = [(i, it) for i, it in items if it is not None]
        bar.update(min(batch_size, len(data) - start))
        if not items:
            continue
        audio = torch.stack([it["audio"] for _, it in items]).to(next(ae.parameters()).device)
        # Raw VAE means (encode divides by the pretransform scale): readers divide by the scale they need.
        lat = (ae.encode(audio[..., : frames * ratio]) * ae.cfg.scale).float().cpu()
        sum_sq += float((lat**2).sum())
        count += lat.numel()
        if envelope is not None:
            env = band_log_energies(audio[..., : frames * ratio].cpu(), sample_rate, envelope.bands_hz, ratio,
                                    envelope.smoothing)
        for k, ((i, it), z) in enumerate(zip(items, lat)):
            valid = int(np.ceil(it["seconds_total"] * sample_rate / ratio))
            if envelope is not None:
                used = env[k, :, : min(frames, max(1, valid))].double()
                env_sum += used.sum(-1)
                env_sq += (used**2).sum(-1)
                env_count += used.shape[-1]
                shard_env.append(env[k].unsqueeze(0))
            rows.append({"caption": it["caption"], "shard": f"shard_{shard_id:05d}.safetensors",
                         "offset": len(shard), "frames": min(frames, max(1, valid)),
                         "source": str(data.entries[i].path)})
            shard.append(z.unsqueeze(0))
        if len(shard) >= shard_size:
            flush()
    flush()
    bar.close()
    if not rows:
        raise ValueError("no usable audio to encode")
    index = {"rows": rows, "frames": frames, "frames_per_second": sample_rate / ratio,
             "latent_dim": ae.cfg.latent_dim, "latent_scale": float(np.sqrt(sum_sq / count)),
             "skipped": dict(data.skipped), "sample_rate": sample_rate}
    if envelope is not None:
        mean = env_sum / env_count
        envelope.mean = mean.tolist()
        envelope.std = (env_sq / env_count - mean**2).clamp_min(1e-12).sqrt().tolist()
        index["envelope"] = envelope.to_dict()
    text = json.dumps(index) + "\n"
    atomic_write_bytes(out / LATENT_INDEX, lambda tmp: Path(tmp).write_text(text))
    return out / LATENT_INDEX


class LatentDataset:
    """Items {"latents": [D, frames] / latent_scale, "caption", "seconds_start", "seconds_total"},
    random-cropped (or zero-padded) to `frames`. A cache with envelopes gives [D + bands, frames]: the
    scaled latents, then the envelopes normalised by ``envelope``'s statistics (the cache's own unless a
    model's are set, as post-training on another cache does)."""

    def __init__(self, folder: str | Path, frames: int | None = None):
        self.folder = Path(folder)
        index_path = self.folder / LATENT_INDEX
        if not index_path.is_file():
            raise FileNotFoundError(f"{index_path} not found: make it with `prestissimo encode`")
        self.index = json.loads(index_path.read_text())
        self.rows = self.index["rows"]
        self.frames = frames or self.index["frames"]
        self.scale = float(self.index.get("latent_scale", 1.0))
        self.envelope = EnvelopeSpec.from_dict(self.index["envelope"]) if "envelope" in self.index else None
        self.skipped: Counter[str] = Counter(self.index.get("skipped", {}))
        self._shards: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def channels(self) -> int:
        """Channels of an item: the autoencoder's latent dim, plus the envelope bands if cached."""
        return int(self.index["latent_dim"]) + (self.envelope.channels if self.envelope else 0)

    def _shard(self, name: str) -> torch.Tensor:
        if name not in self._shards:
            tensors = load_file(str(self.folder / name))
            lat = tensors["latents"]
            if self.envelope is not None:
                if "envelopes" not in tensors:
                    raise ValueError(f"{self.folder / name} has no envelopes although latents.json lists them")
                lat = torch.cat([lat, tensors["envelopes"].to(lat.dtype)], 1)
            self._shards[name] = lat
        return self._shards[name]

    def get(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        row = self.rows[index]
        lat = self._shard(row["shard"])[row["offset"], :, : row["frames"]].float()
        start = 0
        if lat.shape[-1] > self.frames:
            start = int(rng.integers(0, lat.shape[-1] - self.frames + 1))
            lat = lat[:, start:start + self.frames]
        d = int(self.index["latent_dim"])
        latents = lat[:d] / self.scale
        if lat.shape[-1] < self.frames:  # past the clip: silent latents (zeros) and envelopes at the floor
            latents = torch.nn.functional.pad(latents, (0, self.frames - lat.shape[-1]))
        if self.envelope is not None:
            env = normalise(lat[d:], self.envelope)
            env = torch.cat([env, silence(self.envelope).expand(-1, self.frames - env.shape[-1])], -1)
            latents = torch.cat([latents, env])
        rate = self.index["frames_per_second"]
        return {"latents": latents, "caption": row["caption"], "seconds_start": start / rate,
                "seconds_total": min(row["frames"], self.frames) / rate}

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"latents": torch.stack([i["latents"] for i in items]), "caption": [i["caption"] for i in items],
                "seconds_start": [i["seconds_start"] for i in items],
                "seconds_total": [i["seconds_total"] for i in items]}
