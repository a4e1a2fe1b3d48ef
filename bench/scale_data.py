"""Synthetic catalog vectors generated chunk by chunk, for catalogs too large to hold in memory twice.

Two models of a member's vectors:

- **catalog** (with ``profiles``, :mod:`bench.scale_profile`): a Gaussian mixture drawn with the
  spread of the real catalog's embeddings (mean norm, centre and within-component spectra,
  component weights) in a random basis per member; queries are fresh draws, as a new product's
  vector would be. Its local intrinsic dimension is about 10, the real catalog's about 8.
- **isotropic** (no profiles): :mod:`bench.vectors`'s model, ``normalize(centroid + noise)`` with
  noise as large as the centroid in every direction (local intrinsic dimension about 49: the
  hardest case for a graph index); queries are noisy copies of stored items.

Every chunk of CHUNK items comes from its own seeded generator, so any chunk can be made again on
demand: the loader uploads chunk after chunk and the exact search for recall streams over them, and
the vectors never sit in the process twice (their memory would otherwise count in the build's peak
RSS).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from bench.scale_profile import MemberProfile
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
class MemberModel:
    """How one member's vectors are drawn: ``normalize(centres[c] + (z * scales) @ basis.T)``, with
    component ``c`` drawn by ``weights`` and ``z`` standard normal."""

    centres: np.ndarray  # components x dim
    weights: np.ndarray  # components, summing to 1
    scales: np.ndarray  # dim: standard deviations along the basis
    basis: np.ndarray  # dim x dim orthonormal

    def draw(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``size`` unit vectors and the component each came from."""
        ids = rng.choice(len(self.weights), size=size, p=self.weights)
        noise = (rng.normal(size=(size, len(self.scales))) * self.scales) @ self.basis.T
        return _unit_rows(self.centres[ids] + noise), ids


def isotropic_model(rng: np.random.Generator, dim: int) -> MemberModel:
    """CLUSTERS random unit centroids, equally likely, noise of norm about 1 in every direction."""
    centres = _unit_rows(rng.normal(size=(CLUSTERS, dim)))
    return MemberModel(
        centres, np.full(CLUSTERS, 1.0 / CLUSTERS), np.full(dim, 1.0 / np.sqrt(dim)), np.eye(dim)
    )


def profiled_model(rng: np.random.Generator, profile: MemberProfile) -> MemberModel:
    """The profile's mixture in a random orthonormal basis (the spectra say how much, not where)."""
    dim = profile.dim
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    mean = rng.normal(size=dim)
    mean *= profile.mean_norm / np.linalg.norm(mean)
    weights = np.asarray(profile.weights)
    offsets = (rng.normal(size=(len(weights), dim)) * np.sqrt(profile.between)) @ basis.T
    return MemberModel(mean + offsets, weights / weights.sum(), np.sqrt(np.asarray(profile.within)), basis)


@dataclass(frozen=True)
class ChunkedDataset:
    """``n`` items x ``dims`` members, reproducible chunk by chunk from ``seed``; drawn like the real
    catalog when ``profiles`` has every member, else by the isotropic model."""

    n: int
    dims: Mapping[str, int]
    seed: int = 0
    profiles: Mapping[str, MemberProfile] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.profiles is None:
            return
        for member, dim in self.dims.items():
            profile = self.profiles.get(member)
            if profile is None:
                raise ValueError(f"no profile for member {member!r}; profiled: {sorted(self.profiles)}")
            if profile.dim != dim:
                raise ValueError(f"member {member!r} has dim {dim}, its profile {profile.dim}")

    @property
    def model_name(self) -> str:
        """``catalog`` or ``isotropic``."""
        return "isotropic" if self.profiles is None else "catalog"

    @cached_property
    def models(self) -> dict[str, MemberModel]:
        """Each member's model (the same for every chunk)."""
        out = {}
        for index, (member, dim) in enumerate(self.dims.items()):
            rng = np.random.default_rng((self.seed, 1_000_003, index))
            if self.profiles is None:
                out[member] = isotropic_model(rng, dim)
            else:
                out[member] = profiled_model(rng, self.profiles[member])
        return out

    def chunk(self, number: int) -> Chunk:
        """Chunk ``number`` (items ``number * CHUNK`` onwards)."""
        start = number * CHUNK
        size = min(CHUNK, self.n - start)
        if size <= 0:
            raise IndexError(f"chunk {number} is past the {self.n} items")
        rng = np.random.default_rng((self.seed, number))
        vectors, clusters = {}, {}
        for member in self.dims:
            vectors[member], ids = self.models[member].draw(rng, size)
            clusters[member] = ids % CLUSTERS
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
        """``count`` queries ``{member: unit vector}``: fresh draws (catalog model) or noisy copies of
        random stored items (isotropic model, where a fresh draw has no near neighbours)."""
        rng = np.random.default_rng((self.seed, 7, seed))
        if self.profiles is not None:
            drawn = {m: model.draw(rng, count)[0] for m, model in self.models.items()}
            return [{m: drawn[m][row] for m in self.dims} for row in range(count)]
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
        for name, wanted in (keep or {}).items():
            mask &= np.isin(chunk.attributes[:, columns[name]], list(wanted))
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
