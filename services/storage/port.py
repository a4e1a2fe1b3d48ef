"""The one storage interface that ingest and search use; adapters live beside it.

Collections hold one named vector per ensemble member (cosine distance). Point ids are
``uuid5(POINT_NAMESPACE, product_id)`` so upserts are idempotent; the product id is kept in
the payload under ``id``. Filters are ``{field: (value, ...)}``: a point matches when, for every
field, its payload value equals one of the listed values.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

POINT_NAMESPACE = uuid.UUID("6f1c2a4e-5b7d-4e0a-9c3f-7a1b2c3d4e5f")

Filters = Mapping[str, Sequence[str | int]]
"""``{field: (value, ...)}``; a string spelling an integer (``"3"``) also matches the integer 3."""

PayloadIndexes = Mapping[str, str] | Sequence[str]
"""Fields to index: a sequence of keyword fields, or ``{field: "keyword" | "integer"}``."""

INDEX_TYPES = ("keyword", "integer")


def point_id(product_id: str) -> str:
    """Deterministic point id for a product id (idempotent upserts)."""
    return str(uuid.uuid5(POINT_NAMESPACE, product_id))


class StoreError(RuntimeError):
    """The store failed or is unreachable."""


class CollectionNotFound(StoreError):
    """The named collection or alias does not exist."""


@dataclass(frozen=True)
class Point:
    """A product to write: ``id`` is the product id (the adapter sets ``payload['id']`` to it)."""

    id: str
    vectors: Mapping[str, Sequence[float]]
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class ScoredPoint:
    """One hit from one member's query."""

    id: str
    score: float
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredPoint:
    """A point read back by id or scroll."""

    id: str
    payload: Mapping[str, Any]
    vectors: Mapping[str, Sequence[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class MemberQuery:
    """Nearest-neighbour query against one member's named vector."""

    member: str
    vector: Sequence[float]
    limit: int


def index_types(payload_indexes: PayloadIndexes) -> dict[str, str]:
    """``{field: index type}`` from either form of ``payload_indexes``; unknown types raise ValueError."""
    if isinstance(payload_indexes, Mapping):
        typed = dict(payload_indexes)
    else:
        typed = dict.fromkeys(payload_indexes, "keyword")
    for name, kind in typed.items():
        if kind not in INDEX_TYPES:
            raise ValueError(f"payload index {name!r}: unknown type {kind!r}; valid: {list(INDEX_TYPES)}")
    return typed


class VectorStore(abc.ABC):
    """Port implemented by every storage adapter.

    Ids at this interface are product ids (adapters map them to uuid5 point ids and keep the
    product id in ``payload['id']``). Collection arguments may name an alias. Methods are
    synchronous and thread-safe; async callers wrap them in ``asyncio.to_thread``.
    """

    @abc.abstractmethod
    def ensure_collection(
        self, name: str, vectors: Mapping[str, int], payload_indexes: PayloadIndexes = ()
    ) -> None:
        """Create ``name`` with one cosine named vector per member (name -> dim) if missing.

        An existing collection must have the same vectors (else :class:`StoreError`); missing
        payload indexes are added.
        """

    @abc.abstractmethod
    def upsert(self, collection: str, points: Sequence[Point]) -> None:
        """Insert or replace points (by uuid5 of their product id)."""

    @abc.abstractmethod
    def delete(self, collection: str, ids: Sequence[str] = (), filters: Filters | None = None) -> int:
        """Delete by product ids and/or filter (both: ids that match the filter); return how many went.

        With neither ids nor filters nothing is deleted (raises ValueError): never "delete all".
        """

    @abc.abstractmethod
    def count(self, collection: str, filters: Filters | None = None) -> int:
        """Exact number of points (matching ``filters``)."""

    @abc.abstractmethod
    def query(
        self,
        collection: str,
        queries: Sequence[MemberQuery],
        filters: Filters | None = None,
        payload_fields: Sequence[str] | None = None,
    ) -> dict[str, list[ScoredPoint]]:
        """Run one query per member, in one round trip where the backend allows; ranked lists by member.

        ``payload_fields`` keeps only those top-level payload keys (``id`` always) in the hits; None
        returns whole payloads. Converting payloads is most of a query's cost, so callers that only
        rank ask for ids and fetch the page's payloads with :meth:`retrieve`.
        """

    @abc.abstractmethod
    def retrieve(self, collection: str, ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        """Points for the given product ids (missing ids are left out)."""

    @abc.abstractmethod
    def scroll(
        self,
        collection: str,
        batch_size: int = 256,
        with_vectors: bool = False,
        filters: Filters | None = None,
    ) -> Iterator[StoredPoint]:
        """Every point of the collection (matching ``filters``), fetched in batches, in point-id order."""

    @abc.abstractmethod
    def collections(self) -> list[str]:
        """Names of existing collections."""

    @abc.abstractmethod
    def drop_collection(self, name: str) -> None:
        """Remove a collection and its data."""

    @abc.abstractmethod
    def resolve_alias(self, alias: str) -> str | None:
        """Collection the alias points at, or None."""

    @abc.abstractmethod
    def swap_alias(self, alias: str, collection: str) -> str | None:
        """Point ``alias`` at ``collection`` atomically; return the previous target."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Make written data durable."""

    @abc.abstractmethod
    def optimize(self, collection: str) -> None:
        """Build indexes after a bulk load (no-op where the backend does it by itself)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release files and connections."""
