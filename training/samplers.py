"""Batch samplers: shuffled epochs, and P x K (P classes x K items per class) for metric losses."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class RandomBatches:
    """Shuffled batches of positions; a new permutation per pass, drawn from (seed, epoch)."""

    def __init__(self, positions: Sequence[int], batch_size: int, seed: int = 0):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        if len(positions) == 0:
            raise ValueError("RandomBatches needs at least one position")
        self.positions = np.asarray(positions)
        self.batch_size = batch_size
        self.seed = seed

    def epoch(self, epoch: int, steps: int) -> Iterator[np.ndarray]:
        """``steps`` batches for one epoch (the permutation restarts when exhausted)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.positions)
        cursor = 0
        for _ in range(steps):
            if cursor + self.batch_size > len(order):
                order, cursor = rng.permutation(self.positions), 0
            yield order[cursor : cursor + self.batch_size]
            cursor += self.batch_size


class PKBatches:
    """P classes x K items per batch. Classes are drawn with probability proportional to ``count ** power``
    (0 = uniform, 1 = as in the data); a class with fewer than K items is sampled with replacement."""

    def __init__(
        self,
        positions: Sequence[int],
        labels: Sequence[int],
        p: int,
        k: int,
        seed: int = 0,
        power: float = 0.5,
    ):
        if p <= 0 or k <= 0:
            raise ValueError(f"P and K must be > 0, got P={p}, K={k}")
        if len(positions) != len(labels):
            raise ValueError(f"positions ({len(positions)}) and labels ({len(labels)}) differ in length")
        by_class: dict[int, list[int]] = {}
        for pos, label in zip(positions, labels, strict=True):
            by_class.setdefault(int(label), []).append(int(pos))
        if len(by_class) < p:
            raise ValueError(f"P={p} exceeds the number of classes ({len(by_class)})")
        self.classes = sorted(by_class)
        self.members = [np.asarray(by_class[c]) for c in self.classes]
        weights = np.array([len(m) for m in self.members], dtype=np.float64) ** power
        self.probability = weights / weights.sum()
        self.p, self.k, self.seed = p, k, seed

    @property
    def batch_size(self) -> int:
        """P * K."""
        return self.p * self.k

    def epoch(self, epoch: int, steps: int) -> Iterator[np.ndarray]:
        """``steps`` batches of P*K positions: K consecutive positions per chosen class."""
        rng = np.random.default_rng([self.seed, epoch])
        for _ in range(steps):
            chosen = rng.choice(len(self.classes), size=self.p, replace=False, p=self.probability)
            batch = [
                rng.choice(self.members[c], size=self.k, replace=len(self.members[c]) < self.k)
                for c in chosen
            ]
            yield np.concatenate(batch)
