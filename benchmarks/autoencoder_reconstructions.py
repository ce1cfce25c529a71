"""Encode and decode a manifest's clips with an autoencoder and write the reconstructions as
`<key>.wav`, so that `prestissimo eval --audio DIR` scores them: the ceiling any DiT trained on this
autoencoder's latents can reach on FD and prompt adherence.

    python benchmarks/autoencoder_reconstructions.py AE_DIR MANIFEST OUT_DIR [--limit 50]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from prestissimo.data.audio import load_audio, resample, save_wav
from prestissimo.data.datasets import fit_channels
from prestissimo.data.manifest import read_manifest
from prestissimo.models.autoencoder_io import load_autoencoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("autoencoder", type=Path)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    ae, rate = load_autoencoder(args.autoencoder)
    ratio = ae.downsampling_ratio
    args.out.mkdir(parents=True, exist_ok=True)
    for entry in read_manifest(args.manifest)[: args.limit]:
        audio, sr = load_audio(entry.path)
        audio = fit_channels(resample(audio, sr, rate), ae.cfg.audio_channels)
        length = audio.shape[-1] // ratio * ratio
        with torch.no_grad():
            recon = ae.decode(ae.encode(torch.from_numpy(np.ascontiguousarray(audio[:, :length]))[None]))[0]
        save_wav(recon, args.out / f"{entry.key}.wav", rate)
    print(args.out)


if __name__ == "__main__":
    main()
