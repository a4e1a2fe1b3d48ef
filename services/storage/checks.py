"""Input checks and conversions shared by the storage adapters (same errors on every backend)."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from domain.lexical import SparseVector
from services.storage.port import SPARSE, MemberQuery, Point, StoredPoint

T = TypeVar("T")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")


def dense_and_sparse(wanted: Mapping[str, int]) -> tuple[dict[str, int], list[str]]:
    """``{member: dim}`` of the dense members and the names of the sparse ones (dim ``SPARSE``)."""
    dense = {m: d for m, d in wanted.items() if d != SPARSE}
    return dense, [m for m, d in wanted.items() if d == SPARSE]


def check_name(name: str, what: str = "collection") -> str:
    """Return ``name`` when it is a usable collection/alias name, else raise ValueError."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name in {".", ".."}:
        raise ValueError(f"{what} name {name!r} must match {NAME_PATTERN.pattern} (letters, digits, _ . -)")
    return name


def as_vector(values: Sequence[float] | np.ndarray) -> list[float]:
    """A plain list of floats from a list or array (what both client libraries accept)."""
    return np.asarray(values, dtype=np.float32).reshape(-1).tolist()


def wanted_spec(name: str, vectors: Mapping[str, int], sparse_vectors: Sequence[str]) -> dict[str, int]:
    """``{vector name: dim}`` with ``SPARSE`` for the sparse ones; ValueError on clashes or none."""
    wanted = {member: int(dim) for member, dim in vectors.items()}
    for member in sparse_vectors:
        if member in wanted:
            raise ValueError(f"collection {name!r}: {member!r} is named as both a dense and a sparse vector")
        wanted[member] = SPARSE
    if not any(dim != SPARSE for dim in wanted.values()):
        raise ValueError(f"collection {name!r}: at least one named vector is needed")
    return wanted


def sparse_parts(vector: SparseVector, where: str) -> tuple[list[int], list[float]]:
    """Indices and values of a sparse vector, checked: equal lengths, distinct u32 indices, finite values."""
    indices, values = [int(i) for i in vector.indices], [float(v) for v in vector.values]
    if len(indices) != len(values):
        raise ValueError(f"{where}: {len(indices)} sparse indices but {len(values)} values")
    if len(set(indices)) != len(indices) or any(not 0 <= i < 2**32 for i in indices):
        raise ValueError(f"{where}: sparse indices must be distinct integers in [0, 2**32)")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{where}: sparse values must be finite")
    return indices, values


def as_sparse(value: Any) -> SparseVector:
    """A client library's stored sparse vector (``indices``, ``values``) as a :class:`SparseVector`."""
    order = sorted(range(len(value.indices)), key=lambda j: value.indices[j])
    return SparseVector(
        tuple(int(value.indices[j]) for j in order), tuple(float(value.values[j]) for j in order)
    )


def _stored_vectors(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: as_sparse(v) if hasattr(v, "indices") and hasattr(v, "values") else v for name, v in raw.items()
    }


def unique(ids: Iterable[str]) -> list[str]:
    """Ids in first-seen order without repeats."""
    return list(dict.fromkeys(ids))


def last_wins(points: Sequence[Point]) -> list[Point]:
    """One point per product id, the later one winning (stable order of last occurrence)."""
    latest: dict[str, Point] = {}
    for point in points:
        latest.pop(point.id, None)
        latest[point.id] = point
    return list(latest.values())


def payload_of(point: Point) -> dict[str, Any]:
    """The stored payload: the point's payload with ``id`` set to the product id."""
    if not isinstance(point.id, str) or not point.id:
        raise ValueError(f"point id must be a non-empty product id string, got {point.id!r}")
    return {**point.payload, "id": point.id}


def stored_point(record: Any, with_vectors: bool) -> StoredPoint:
    """A client library's record (``id``, ``payload``, ``vector``) as a :class:`StoredPoint`."""
    payload = dict(record.payload or {})
    vectors = _stored_vectors(record.vector or {}) if with_vectors else {}
    key = str(record.id)
    return StoredPoint(id=str(payload.get("id", key)), payload=payload, vectors=vectors, key=key)


def in_key_order(records: Iterable[Any], keys: Sequence[str], with_vectors: bool) -> list[StoredPoint]:
    """Records as points in the order of ``keys`` (keys without a record are left out)."""
    found = {p.key: p for p in (stored_point(r, with_vectors) for r in records)}
    return [found[k] for k in keys if k in found]


class PerCollection(Generic[T]):
    """A value read per collection (``fetch(collection)``), cached until forgotten; thread-safe."""

    def __init__(self, fetch: Callable[[str], T]) -> None:
        self._fetch = fetch
        self._values: dict[str, T] = {}
        self._lock = threading.Lock()

    def forget(self, name: str | None = None) -> None:
        """Drop one cached collection (or all)."""
        with self._lock:
            if name is None:
                self._values.clear()
            else:
                self._values.pop(name, None)

    def get(self, collection: str, refresh: bool = False) -> T:
        """The cached value (read now when missing, or when ``refresh``)."""
        with self._lock:
            cached = None if refresh else self._values.get(collection)
        if cached is None:
            cached = self._fetch(collection)
            with self._lock:
                self._values[collection] = cached
        return cached


class VectorSpecs(PerCollection[dict[str, int]]):
    """Cached ``{member: dim}`` per collection, to reject bad vectors with the same error everywhere.

    A mismatch re-reads the collection once (it may have been recreated or an alias moved) before
    raising, so a stale cache never rejects a good request.
    """

    def check(self, collection: str, vectors: Mapping[str, Any], where: str) -> None:
        """Raise ValueError unless every named vector exists in the collection with the right size."""
        for refresh in (False, True):
            problem = _mismatch(self.get(collection, refresh), vectors, where)
            if problem is None:
                return
        raise ValueError(problem)


def checked_queries(
    specs: VectorSpecs, collection: str, queries: Sequence[MemberQuery]
) -> Sequence[MemberQuery]:
    """``queries``, once each names a member of ``collection`` with the right size and a limit > 0."""
    for q in queries:
        specs.check(collection, {q.member: q.vector}, f"query for member {q.member!r}")
        if q.limit <= 0:
            raise ValueError(f"query for member {q.member!r}: limit must be > 0, got {q.limit}")
    return queries


def _mismatch(spec: Mapping[str, int], vectors: Mapping[str, Any], where: str) -> str | None:
    for member, values in vectors.items():
        if member not in spec:
            return f"{where}: unknown member {member!r}; valid: {sorted(spec)}"
        if (spec[member] == SPARSE) != isinstance(values, SparseVector):
            kind = "a sparse vector" if spec[member] == SPARSE else "a dense vector"
            return f"{where}: member {member!r} needs {kind}"
        if spec[member] == SPARSE:
            sparse_parts(values, f"{where}: member {member!r}")
            continue
        size = int(np.asarray(values).size)
        if size != spec[member]:
            return f"{where}: member {member!r} needs {spec[member]} values, got {size}"
    return None
