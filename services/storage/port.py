"""The one storage interface that ingest and search use; adapters live beside it.

Collections hold one named vector per ensemble member (cosine distance) and, for a lexical
member, a named sparse vector scored by dot product with the store's IDF modifier
(:class:`domain.lexical.SparseVector` in points and queries). Point ids are
``uuid5(POINT_NAMESPACE, product_id)`` so upserts are idempotent; the product id is kept in
the payload under ``id``. Filters are ``{field: (value, ...)}``: a point matches when, for every
field, its payload value equals one of the listed values.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from domain.lexical import SparseVector
from domain.schema import LAYOUTS, FieldIndex
from services.storage.settings import IndexSettings

POINT_NAMESPACE = uuid.UUID("6f1c2a4e-5b7d-4e0a-9c3f-7a1b2c3d4e5f")

Scalar = str | int | float
Vector = Sequence[float] | SparseVector
"""A dense member's values, or a sparse member's :class:`SparseVector`."""
SPARSE = 0
"""The size a collection's vector spec gives a sparse vector (``{name: dim or SPARSE}``)."""


@dataclass(frozen=True)
class Condition:
    """A typed condition on one payload field; every part given must hold.

    ``kind`` is the field's schema type (``keyword``, ``integer``, ``float``, ``bool``,
    ``datetime``, ``text``) or ``""`` for an undeclared field (exact string match; a value spelling
    an integer also matches the integer). ``any_of``: the value is one of these; ``none_of``: it is
    none of these (items without the field pass); ``gte``/``gt``/``lte``/``lt``: numeric bounds
    (epoch seconds for datetimes). Values are already converted to the stored form.
    """

    kind: str = ""
    any_of: tuple[Scalar, ...] = ()
    none_of: tuple[Scalar, ...] = ()
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None

    @property
    def has_range(self) -> bool:
        """Whether any bound is set."""
        return any(b is not None for b in (self.gte, self.gt, self.lte, self.lt))


Filters = Mapping[str, Sequence[str | int] | Condition]
"""``{field: (value, ...)}`` (exact match; ``"3"`` also matches the integer 3) or ``{field: Condition}``."""

PayloadIndexes = Mapping[str, "str | FieldIndex"] | Sequence[str]
"""Fields to index: a sequence of keyword fields, or ``{field: type}`` with a type of INDEX_TYPES
(or a :class:`FieldIndex`, which adds a storage layout)."""

INDEX_TYPES = ("keyword", "integer", "float", "datetime", "text")
FACET_INDEX_TYPES = ("keyword", "integer")  # the payload indexes a facet can count


def point_id(product_id: str) -> str:
    """Deterministic point id for a product id (idempotent upserts)."""
    return str(uuid.uuid5(POINT_NAMESPACE, product_id))


class StoreError(RuntimeError):
    """The store failed or is unreachable."""


class CollectionNotFound(StoreError):
    """The named collection or alias does not exist."""


class FieldNotIndexed(ValueError):
    """A facet names a field the collection has no keyword or integer payload index for."""

    def __init__(self, field_name: str, collection: str) -> None:
        super().__init__(f"field {field_name!r} has no keyword or integer payload index in {collection!r}")
        self.field_name = field_name
        self.collection = collection


@dataclass(frozen=True)
class Point:
    """A product to write: ``id`` is the product id (the adapter sets ``payload['id']`` to it)."""

    id: str
    vectors: Mapping[str, Vector]
    payload: Mapping[str, Any]


NO_PAYLOAD: Mapping[str, Any] = MappingProxyType({})


class ScoredPoint(NamedTuple):
    """One hit from one member's query (a tuple: hundreds are built per search).

    ``key`` is the store's point id (:func:`point_id` of the product id). ``id`` is the product
    id, or "" when the query read no payload (``payload_fields=()``); such hits are resolved
    later with :meth:`VectorStore.retrieve_keys`.
    """

    id: str
    score: float
    payload: Mapping[str, Any] = NO_PAYLOAD
    key: str = ""


def scored_points(
    hits: Iterable[Any], read_payload: bool, key_of: Callable[[Any], str] = str
) -> list[ScoredPoint]:
    """An adapter's raw hits (objects with ``id``, ``score``, ``payload``) as :class:`ScoredPoint`.

    Without ``read_payload`` the hits carry key and score only (``id`` ""). ``key_of`` turns a hit's
    id into its key. This runs for every candidate of every search, hence the tuple-level
    construction.
    """
    new = tuple.__new__  # NamedTuple's own constructor adds a call per hit
    if not read_payload:
        return [new(ScoredPoint, ("", h.score, NO_PAYLOAD, key_of(h.id))) for h in hits]
    points = []
    for h in hits:
        key, payload = key_of(h.id), h.payload or {}
        points.append(new(ScoredPoint, (str(payload.get("id", key)), h.score, payload, key)))
    return points


@dataclass(frozen=True)
class StoredPoint:
    """A point read back by id or scroll."""

    id: str
    payload: Mapping[str, Any]
    vectors: Mapping[str, Vector] = field(default_factory=dict)
    key: str = ""  # the store's point id


@dataclass(frozen=True)
class MemberQuery:
    """Nearest-neighbour query against one member's named vector (a sparse one: a SparseVector)."""

    member: str
    vector: Vector
    limit: int


class IndexFlags(NamedTuple):
    """What a payload index's layout asks of the store, the same for every adapter."""

    tenant: bool | None  # True for a tenant field (None: the engine's default)
    principal: bool | None  # True for the principal field
    links: bool  # HNSW payload links (built when hnsw_payload_m > 0): tenant fields only


def index_flags(spec: FieldIndex) -> IndexFlags:
    """The store flags of a payload index: its layout, and payload links for tenant fields only,
    so that turning on ``hnsw_payload_m`` builds little extra graph."""
    tenant = spec.layout == "tenant"
    return IndexFlags(tenant or None, True if spec.layout == "principal" else None, tenant)


def index_types(payload_indexes: PayloadIndexes) -> dict[str, FieldIndex]:
    """``{field: FieldIndex}`` from any form of ``payload_indexes``; an unknown type or a layout its
    type cannot take raises ValueError."""
    if isinstance(payload_indexes, Mapping):
        given = dict(payload_indexes)
    else:
        given = dict.fromkeys(payload_indexes, "keyword")
    typed = {name: spec if isinstance(spec, FieldIndex) else FieldIndex(spec) for name, spec in given.items()}
    for name, spec in typed.items():
        if spec.kind not in INDEX_TYPES:
            raise ValueError(
                f"payload index {name!r}: unknown type {spec.kind!r}; valid: {list(INDEX_TYPES)}"
            )
        if spec.layout and spec.kind not in LAYOUTS.get(spec.layout, ()):
            raise ValueError(f"payload index {name!r}: layout {spec.layout!r} does not apply to {spec.kind}")
    return typed


class FacetCount(NamedTuple):
    """One value of a faceted field and how many items hold it."""

    value: str | int
    count: int


def top_facets(counts: Iterable[tuple[str | int, int]], limit: int) -> list[FacetCount]:
    """The ``limit`` most frequent values: count descending, then value ascending (as text)."""
    ordered = sorted(counts, key=lambda vc: (-vc[1], str(vc[0])))
    return [FacetCount(v, int(c)) for v, c in ordered[:limit] if c > 0]


class VectorStore(abc.ABC):
    """Port implemented by every storage adapter.

    Ids at this interface are product ids (adapters map them to uuid5 point ids and keep the
    product id in ``payload['id']``). Collection arguments may name an alias. Methods are
    synchronous and thread-safe; async callers wrap them in ``asyncio.to_thread``, unless
    ``holds_interpreter``.
    """

    # True where every call keeps the interpreter (the GIL) until it returns, as an in-process
    # engine does: a worker thread then buys no concurrency (the event loop waits either way) and
    # costs a thread hand-off each way, so latency-bound callers may call inline.
    holds_interpreter: bool = False

    @abc.abstractmethod
    def ensure_collection(
        self,
        name: str,
        vectors: Mapping[str, int],
        payload_indexes: PayloadIndexes = (),
        sparse_vectors: Sequence[str] = (),
    ) -> None:
        """Create ``name`` with one cosine named vector per member (name -> dim) if missing, and one
        sparse vector (IDF modifier) per name of ``sparse_vectors``.

        An existing collection must have the same vectors, dense and sparse (else
        :class:`StoreError`); missing payload indexes are added.
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
    def facet(
        self, collection: str, field_name: str, limit: int, filters: Filters | None = None
    ) -> list[FacetCount]:
        """Exact counts of the values of an indexed (keyword or integer) field over the matching points.

        The ``limit`` most frequent values, ordered by :func:`top_facets`. A field without a
        keyword or integer payload index raises :class:`FieldNotIndexed`.
        """

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
        returns whole payloads; ``()`` reads no payload at all (hits carry their ``key`` and score,
        ``id`` is ""). Reading payloads is most of a query's cost, so callers that only rank ask
        for none and fetch the page's points with :meth:`retrieve_keys`.
        """

    def query_rrf(
        self,
        collection: str,
        queries: Sequence[MemberQuery],
        k: int,
        limit: int,
        filters: Filters | None = None,
    ) -> list[ScoredPoint] | None:
        """Reciprocal rank fusion inside the store, in one call; None where the backend cannot.

        Each member query fetches its ``limit`` nearest (``MemberQuery.limit``); a point scores
        ``sum_m 1 / (k + rank_m)`` (1-based ranks) over the members that fetched it, and the best
        ``limit`` points come back with whole payloads, best first. Exact score ties come in no
        defined order; callers that page re-sort. Which members fetched a point is not reported.
        """
        return None

    @abc.abstractmethod
    def retrieve_keys(
        self, collection: str, keys: Sequence[str], with_vectors: bool = False
    ) -> list[StoredPoint]:
        """Points for the given store keys (``ScoredPoint.key``), in the order asked; missing left out."""

    def retrieve(self, collection: str, ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        """Points for the given product ids, in the order asked (repeats once; missing left out)."""
        keys = {point_id(product_id): product_id for product_id in ids}
        if not keys:
            return []
        found = {p.key: p for p in self.retrieve_keys(collection, list(keys), with_vectors)}
        return [found[key] for key in keys if key in found]

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
    def optimize(self, collection: str) -> int:
        """Build indexes after a load (where the backend builds by itself: wait for it); returns how
        many vectors, over all members, are in an index afterwards (-1 when the backend does not say)."""

    @abc.abstractmethod
    def index_settings(self, collection: str) -> IndexSettings:
        """The collection's HNSW, optimizer and quantization settings as the backend reports them,
        with this store's query-time settings (``search_ef``, ``quantization_rescore``)."""

    @abc.abstractmethod
    def set_indexing(self, collection: str, enabled: bool) -> None:
        """Switch index building off (``m=0``) for a bulk upload, or back on; :meth:`optimize` builds."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release files and connections."""
