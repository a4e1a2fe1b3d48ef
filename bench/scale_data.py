"""Synthetic catalog vectors generated chunk by chunk, for catalogs too large to hold in memory twice.

The same clustered model as :mod:`bench.vectors` (an item is ``normalize(centroid + noise)`` per
member, with random attributes), but every chunk of CHUNK items comes from its own seeded
generator, so any chunk can be made again on demand: the loader uploads chunk after chunk and the
exact search for recall streams over them, and the vectors never sit in the process twice (their
memory would otherwise count in the build's peak RSS).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bench.vectors import ARTICLE_TYPES, CLUSTERS, COLOURS, GENDERS
from services.storage.port import Point

CHUNK = 8192


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Chunk:
    """Items ``start .. start + len - 1``: vectors per member, cluster ids and attribute indices."""

    start: int
    vectors: Mapping[str, np.ndarray]
    clusters: Mapping[str, np.ndarray]
    attributes: np.ndarray  # rows of indices into GENDERS, ARTICLE_TYPES, COLOURS

    def __len__(self) -> int:
        return len(self.attributes)

    def payload(self, row: int) -> dict[str, object]:
        """What ingest would store for the item at ``row`` (less the product text)."""
        gender, article, colour = self.attributes[row]
        return {
            "gender": GENDERS[gender],
            "articleType": ARTICLE_TYPES[article],
            "baseColour": COLOURS[colour],
            "cluster": {m: int(c[row]) for m, c in self.clusters.items()},
            "bundle_version": "bench",
        }

    def points(self) -> list[Point]:
        """The chunk as store points (product ids are the item numbers)."""
        return [
            Point(str(self.start + row), {m: v[row] for m, v in self.vectors.items()}, self.payload(row))
            for row in range(len(self))
        ]


@dataclass(frozen=True)
class ChunkedDataset:
    """``n`` items x ``dims`` members, reproducible chunk by chunk from ``seed``."""

    n: int
    dims: Mapping[str, int]
    seed: int = 0

    def centroids(self, member: str) -> np.ndarray:
        """The member's CLUSTERS unit centroids (the same for every chunk)."""
        index = list(self.dims).index(member)
        rng = np.random.default_rng((self.seed, 1_000_003, index))
        return _unit_rows(rng.normal(size=(CLUSTERS, self.dims[member])))

    def chunk(self, number: int) -> Chunk:
        """Chunk ``number`` (items ``number * CHUNK`` onwards)."""
        start = number * CHUNK
        size = min(CHUNK, self.n - start)
        if size <= 0:
            raise IndexError(f"chunk {number} is past the {self.n} items")
        rng = np.random.default_rng((self.seed, number))
        vectors, clusters = {}, {}
        for member, dim in self.dims.items():
            ids = rng.integers(0, CLUSTERS, size=size)
            noise = rng.normal(scale=1.0 / np.sqrt(dim), size=(size, dim))
            vectors[member] = _unit_rows(self.centroids(member)[ids] + noise)
            clusters[member] = ids
        attributes = np.stack(
            [rng.integers(0, len(choices), size=size) for choices in (GENDERS, ARTICLE_TYPES, COLOURS)],
            axis=1,
        )
        return Chunk(start, vectors, clusters, attributes)

    def chunks(self) -> Iterator[Chunk]:
        """Every chunk in order."""
        for number in range(-(-self.n // CHUNK)):
            yield self.chunk(number)

    def queries(self, count: int, seed: int = 1) -> list[dict[str, np.ndarray]]:
        """``count`` queries ``{member: unit vector}``: noisy copies of random stored items."""
        rng = np.random.default_rng((self.seed, 7, seed))
        picks = rng.integers(0, self.n, size=count)
        out: list[dict[str, np.ndarray]] = [{} for _ in range(count)]
        for number in sorted({int(p) // CHUNK for p in picks}):
            chunk = self.chunk(number)
            for row, pick in enumerate(picks):
                if pick // CHUNK != number:
                    continue
                for member, dim in self.dims.items():
                    noisy = chunk.vectors[member][pick - chunk.start] + rng.normal(
                        scale=0.5 / np.sqrt(dim), size=dim
                    )
                    out[row][member] = _unit_rows(noisy[None, :])[0]
        return out


def exact_top_k(
    data: ChunkedDataset,
    queries: Sequence[Mapping[str, np.ndarray]],
    k: int,
    keep: Mapping[str, Sequence[int]] | None = None,
) -> list[dict[str, set[str]]]:
    """Per query and member, the ids of the exact top ``k`` by cosine, streaming over the chunks.

    ``keep`` ({"gender": [index, ...]}...) restricts the candidates like a payload filter.
    """
    columns = {"gender": 0, "articleType": 1, "baseColour": 2}
    best = {
        m: (np.full((len(queries), 0), -np.inf), np.zeros((len(queries), 0), dtype=np.int64))
        for m in data.dims
    }
    for chunk in data.chunks():
        mask = np.ones(len(chunk), dtype=bool)
        for field, wanted in (keep or {}).items():
            mask &= np.isin(chunk.attributes[:, columns[field]], list(wanted))
        rows = np.flatnonzero(mask)
        for member in data.dims:
            matrix = np.stack([q[member] for q in queries])
            scores = matrix @ chunk.vectors[member][rows].T
            ids = np.broadcast_to(rows + chunk.start, scores.shape)
            top_s, top_i = best[member]
            scores, ids = np.concatenate([top_s, scores], axis=1), np.concatenate([top_i, ids], axis=1)
            order = np.argsort(-scores, axis=1)[:, :k]
            best[member] = (np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1))
    return [{m: {str(i) for i in best[m][1][q]} for m in data.dims} for q in range(len(queries))]


__all__ = ["CHUNK", "Chunk", "ChunkedDataset", "exact_top_k"]
