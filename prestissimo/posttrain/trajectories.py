"""Teacher trajectories kept across steps, for the ODE warm-up of a distilled generator.

A guided teacher trajectory costs 2 x teacher_steps network calls per item, several times a student
step; a warm-up of a few epochs visits every training prompt several times. Keeping each
(conditioning, variant) trajectory once computed turns those revisits into look-ups. Its start
noise is a pure function of the conditioning, the variant and a seed. Given a folder, the cache also
writes each computed batch there as one safetensors file and reads the folder back when it is made,
so a resumed run does not spend the first pass over the prompts again (about 40 min for a 16-step
fp32 teacher on a 2-core CPU). The folder should be named by everything the trajectories depend on (the teacher's
weights and settings): then a changed teacher writes to a new folder instead of reading stale ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable, Sequence

import torch

from prestissimo.models.loading import atomic_write_bytes

log = logging.getLogger(__name__)

Key = tuple[Hashable, ...]
# noise [B, *shape], row indices into the batch -> (states [B, S, *shape], levels [B, S], end points [B, *shape])
TrajectoryFn = Callable[[torch.Tensor, list[int]], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Trajectory:
    states: torch.Tensor  # [S, *shape]: where the teacher's sampler queried it
    levels: torch.Tensor  # [S]: the noise level of each state
    end: torch.Tensor  # [*shape]: the sample it reached


def noise_seed(key: Key, seed: int) -> int:
    """A 63-bit seed fixed by the key's text: the same in every process (unlike ``hash``)."""
    digest = hashlib.sha256(repr((seed, key)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class TrajectoryCache:
    """Trajectories by key, in memory and (given ``folder``) on disk; ``fetch`` computes the missing
    ones of a batch in one teacher call. Keys must be JSON values (strings, numbers) to be saved."""

    def __init__(self, seed: int, folder: Path | None = None):
        self.seed = seed
        self.folder = folder
        self.entries: dict[Key, Trajectory] = {}
        if folder is not None and folder.is_dir():
            self._read(folder)

    def _read(self, folder: Path) -> None:
        from safetensors import safe_open

        files = sorted(folder.glob("*.safetensors"))
        for path in files:
            try:
                with safe_open(str(path), framework="pt") as f:
                    keys = json.loads((f.metadata() or {})["keys"])
                    states, levels, ends = (f.get_tensor(n) for n in ("states", "levels", "ends"))
                if not len(keys) == len(states) == len(levels) == len(ends):
                    raise ValueError(f"{len(keys)} keys for {len(states)} trajectories")
            except Exception as e:  # a damaged file costs only its own trajectories, computed again
                log.warning("skipping unreadable trajectory file %s (%s); its trajectories are computed again",
                            path, e)
                continue
            for i, key in enumerate(keys):
                self.entries.setdefault(tuple(key), Trajectory(states[i], levels[i], ends[i]))
        if files:
            log.info("read %d teacher trajectories from %s", len(self.entries), folder)

    def _write(self, keys: list[Key], states: torch.Tensor, levels: torch.Tensor, ends: torch.Tensor) -> None:
        from safetensors.torch import save_file

        assert self.folder is not None
        listed = json.dumps([list(k) for k in keys])
        name = hashlib.sha256(listed.encode()).hexdigest()[:20] + ".safetensors"  # the same keys: the same file
        tensors = {"states": states.contiguous(), "levels": levels.contiguous(), "ends": ends.contiguous()}
        atomic_write_bytes(self.folder / name, lambda p: save_file(tensors, p, metadata={"keys": listed}))

    def __len__(self) -> int:
        return len(self.entries)

    def start_noise(self, key: Key, shape: Sequence[int]) -> torch.Tensor:
        g = torch.Generator().manual_seed(noise_seed(key, self.seed))
        return torch.randn(*shape, generator=g)

    def fetch(self, keys: Sequence[Key], shape: Sequence[int], compute: TrajectoryFn) -> list[Trajectory]:
        """The trajectory of every key; ``compute`` runs once on the first row of each missing key."""
        missing: dict[Key, int] = {}
        for row, key in enumerate(keys):
            if key not in self.entries and key not in missing:
                missing[key] = row
        if missing:
            noise = torch.stack([self.start_noise(k, shape) for k in missing])
            states, levels, ends = (t.detach().cpu() for t in compute(noise, list(missing.values())))
            for i, key in enumerate(missing):
                self.entries[key] = Trajectory(states[i], levels[i], ends[i])
            if self.folder is not None:
                self._write(list(missing), states, levels, ends)
        return [self.entries[k] for k in keys]
