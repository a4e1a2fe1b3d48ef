"""Deterministic train/val/test split by product id that keeps byte-identical images on one side.

Each product falls into a bucket from a hash of (seed, group key): the group key is the smallest id
among products whose image files are byte-identical (the catalog reuses photos for sibling styles),
so a duplicate group never straddles two sides and dropping a product never moves another one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from domain.catalog import Catalog

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Product ids per side plus how they were drawn."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    seed: int
    fractions: tuple[float, float, float]

    def ids(self, side: str) -> tuple[str, ...]:
        """The ids of one side; the error lists the valid sides."""
        if side not in SPLITS:
            raise ValueError(f"unknown split {side!r}; valid: {list(SPLITS)}")
        return getattr(self, side)

    def positions(self, catalog: Catalog, side: str) -> list[int]:
        """Positions in ``catalog`` of the products on ``side``."""
        wanted = set(self.ids(side))
        return [i for i, p in enumerate(catalog.products) if p.id in wanted]

    def to_json(self) -> dict:
        """The split.json content."""
        return {
            "seed": self.seed,
            "fractions": list(self.fractions),
            **{s: list(self.ids(s)) for s in SPLITS},
        }

    def write(self, path: str | Path) -> Path:
        """Write split.json."""
        path = Path(path)
        path.write_text(json.dumps(self.to_json()))
        return path


def read_split(path: str | Path) -> Split:
    """Read a split.json."""
    data = json.loads(Path(path).read_text())
    return Split(
        **{s: tuple(data[s]) for s in SPLITS}, seed=int(data["seed"]), fractions=tuple(data["fractions"])
    )


def duplicate_groups(catalog: Catalog) -> dict[str, str]:
    """Map each product id to its group key: the smallest id with byte-identical image bytes."""
    by_digest: dict[str, list[str]] = {}
    for p in catalog.products:
        digest = hashlib.sha1(Path(p.image_uri).read_bytes()).hexdigest() if p.image_uri else p.id
        by_digest.setdefault(digest, []).append(p.id)
    key: dict[str, str] = {}
    for ids in by_digest.values():
        first = min(ids, key=lambda s: (len(s), s))
        for i in ids:
            key[i] = first
    return key


def _unit(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def make_split(
    catalog: Catalog, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> Split:
    """Split ``catalog`` by product id (duplicate groups kept together)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be three numbers >= 0 summing to 1, got {fractions}")
    groups = duplicate_groups(catalog)
    sides: dict[str, list[str]] = {s: [] for s in SPLITS}
    for p in catalog.products:
        u = _unit(seed, groups[p.id])
        side = "train" if u < fractions[0] else "val" if u < fractions[0] + fractions[1] else "test"
        sides[side].append(p.id)
    return Split(**{s: tuple(v) for s, v in sides.items()}, seed=seed, fractions=tuple(fractions))
