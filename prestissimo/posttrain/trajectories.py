"""Teacher trajectories kept across steps, for the ODE warm-up of a distilled generator.

A guided teacher trajectory costs 2 x teacher_steps network calls per item, several times a student
step; a warm-up of a few epochs visits every training prompt several times. Keeping each
(conditioning, variant) trajectory once computed turns those revisits into look-ups. Its start
noise is a pure function of the conditioning, the variant and a seed, so a resumed run recomputes
the same trajectories instead of saving them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import torch

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
    """In-memory trajectories by key; ``fetch`` computes the missing ones of a batch in one teacher call."""

    def __init__(self, seed: int):
        self.seed = seed
        self.entries: dict[Key, Trajectory] = {}

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
            states, levels, ends = compute(noise, list(missing.values()))
            for i, key in enumerate(missing):
                self.entries[key] = Trajectory(states[i].detach().cpu(), levels[i].detach().cpu(),
                                               ends[i].detach().cpu())
        return [self.entries[k] for k in keys]
