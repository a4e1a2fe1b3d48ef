"""qdrant-client adapter: a Qdrant server or cluster by URL, or qdrant-client's local mode for tests.

``StoreConfig.url``: ``http(s)://host:6333`` (api key, TLS by scheme, timeout, gRPC preference,
shards and replication factor on create), ``:memory:``, or ``path:DIR`` (local mode on disk).
Aliases are real Qdrant aliases; an alias swap is one ``update_collection_aliases`` call.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from qdrant_client import QdrantClient, models

from services.common.config import StoreConfig
from services.storage.checks import (
    PerCollection,
    VectorSpecs,
    check_name,
    checked_queries,
    in_key_order,
    last_wins,
    payload_of,
    stored_point,
    unique,
    wanted_spec,
)
from services.storage.port import (
    FACET_INDEX_TYPES,
    CollectionNotFound,
    FacetCount,
    FieldNotIndexed,
    Filters,
    MemberQuery,
    PayloadIndexes,
    Point,
    ScoredPoint,
    StoredPoint,
    StoreError,
    VectorStore,
    index_types,
    point_id,
    scored_points,
    top_facets,
)
from services.storage.qdrant_connection import (
    client_errors,
    client_vector,
    make_client,
    missing_index_as,
    wait_until_green,
)
from services.storage.qdrant_filters import qdrant_filter
from services.storage.qdrant_requests import alias_swap, member_prefetches, member_requests
from services.storage.qdrant_settings import (
    collection_options,
    hnsw_diff,
    qdrant_index_schema,
    search_params,
    stored_settings,
    vector_params,
    vector_spec,
)
from services.storage.scan_plan import FilterGraph, MemberPlanner
from services.storage.settings import IndexSettings, index_settings

FACET_FETCH_LIMIT = 10_000  # values asked of the store before ordering and cutting to the limit


class QdrantStore(VectorStore):
    """:class:`VectorStore` over ``qdrant-client`` (remote, or local mode behind a lock)."""

    def __init__(
        self,
        client: QdrantClient,
        local: bool,
        shards: int = 1,
        replication_factor: int = 1,
        settings: IndexSettings | None = None,
    ) -> None:
        self.client = client
        self.settings = settings or IndexSettings()
        # Local mode searches exactly and warns about search params; it gets none.
        self._planner = MemberPlanner.of(self.settings, search_params)
        self.local = local
        self.shards = shards
        self.replication_factor = replication_factor
        # qdrant-client's local mode is not thread-safe; the remote client is.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if local else contextlib.nullcontext()
        )
        self._specs = VectorSpecs(self._read_vector_spec)
        self._graphs = PerCollection(self._read_filter_graph)
        # Local mode keeps no payload indexes: the facetable fields ensure_collection asked for, so a
        # facet on any other field is refused as a server refuses it.
        self._local_facet_fields: dict[str, set[str]] = {}

    @classmethod
    def from_config(cls, cfg: StoreConfig) -> QdrantStore:
        """Connect as configured (see the module docstring for ``url`` forms)."""
        if cfg.shards < 1 or cfg.replication_factor < 1:
            raise ValueError(
                f"store.shards and store.replication_factor must be >= 1, got {cfg.shards}, "
                f"{cfg.replication_factor}"
            )
        client, local = make_client(cfg)
        return cls(client, local, cfg.shards, cfg.replication_factor, index_settings(cfg))

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        """Serialize local-mode calls; map client errors to the port's errors."""
        with client_errors(what), self._lock:
            yield

    def _read_vector_spec(self, collection: str) -> dict[str, int]:
        with self._call(f"describe {collection}"):
            return vector_spec(collection, self.client.get_collection(collection).config.params)

    def _read_filter_graph(self, collection: str) -> FilterGraph:
        with self._call(f"describe {collection}"):
            info = self.client.get_collection(collection)
        return FilterGraph.of_collection(stored_settings(info.config), info.payload_schema or {})

    def _forget(self, name: str | None = None) -> None:
        self._specs.forget(name)
        self._graphs.forget(name)

    def _member_params(
        self,
        collection: str,
        filters: Filters | None,
        flt: models.Filter | None,
        queries: Sequence[MemberQuery],
    ) -> list[models.SearchParams | None]:
        """Search params per query (see :mod:`services.storage.scan_plan`); none in local mode (it
        searches exactly)."""
        if self.local:
            return [None] * len(queries)

        def estimate() -> int:
            with self._call(f"count {collection}"):
                return int(self.client.count(collection, count_filter=flt, exact=False).count)

        graph, dims = self._graphs.get(collection), self._specs.get(collection)
        return self._planner.plan(queries, filters, graph, dims, estimate)

    def ensure_collection(
        self,
        name: str,
        vectors: Mapping[str, int],
        payload_indexes: PayloadIndexes = (),
        sparse_vectors: Sequence[str] = (),
    ) -> None:
        """Create with cosine named vectors, IDF sparse vectors, shards and replication factor if
        missing; add indexes."""
        check_name(name)
        indexes = index_types(payload_indexes)
        wanted = wanted_spec(name, vectors, sparse_vectors)
        target = self.resolve_alias(name)
        if target is not None:
            raise ValueError(f"{name!r} is an alias (of {target!r}), not a collection")
        with self._call(f"create {name}"):
            exists = self.client.collection_exists(name)
            if not exists:
                dense, sparse = vector_params(wanted, self.settings.datatype)
                self.client.create_collection(
                    name,
                    vectors_config=dense,
                    sparse_vectors_config=sparse or None,
                    shard_number=self.shards,
                    replication_factor=self.replication_factor,
                    **collection_options(self.settings.stored),
                )
        self._forget(name)
        existing = self._read_vector_spec(name)
        if existing != wanted:
            raise StoreError(f"collection {name!r} has vectors {existing}, wanted {wanted}")
        if self.local:  # local mode ignores payload indexes (and warns about them)
            facetable = {f for f, spec in indexes.items() if spec.kind in FACET_INDEX_TYPES}
            self._local_facet_fields.setdefault(name, set()).update(facetable)
            return
        with self._call(f"index {name}"):
            present = set(self.client.get_collection(name).payload_schema)
            for field_name, spec in indexes.items():
                if field_name not in present:
                    self.client.create_payload_index(name, field_name, qdrant_index_schema(spec), wait=True)
        self._graphs.forget(name)

    def upsert(self, collection: str, points: Sequence[Point]) -> None:
        """Insert or replace points; within one call a repeated product id keeps the later point."""
        if not points:
            return
        structs = []
        for point in last_wins(points):
            self._specs.check(collection, point.vectors, f"point {point.id!r}")
            vectors = {
                member: client_vector(values, f"point {point.id!r}")
                for member, values in point.vectors.items()
            }
            structs.append(
                models.PointStruct(id=point_id(point.id), vector=vectors, payload=payload_of(point))
            )
        with self._call(f"upsert into {collection}"):
            self.client.upsert(collection, points=structs, wait=True)

    def delete(self, collection: str, ids: Sequence[str] = (), filters: Filters | None = None) -> int:
        """Delete by ids and/or filter; returns the number of points that matched before deleting."""
        if not ids and not filters:
            raise ValueError("delete needs ids or filters (refusing to delete everything)")
        flt = qdrant_filter(filters, unique(ids))
        with self._call(f"delete from {collection}"):
            matched = self.client.count(collection, count_filter=flt, exact=True).count
            if matched:
                self.client.delete(collection, points_selector=models.FilterSelector(filter=flt), wait=True)
        return int(matched)

    def count(self, collection: str, filters: Filters | None = None) -> int:
        """Exact count of points (matching ``filters``)."""
        flt = qdrant_filter(filters)
        with self._call(f"count {collection}"):
            return int(self.client.count(collection, count_filter=flt, exact=True).count)

    def facet(
        self, collection: str, field_name: str, limit: int, filters: Filters | None = None
    ) -> list[FacetCount]:
        """Qdrant's exact facet over the matching points (the server needs a keyword or integer index)."""
        if limit <= 0:
            raise ValueError(f"limit must be > 0, got {limit}")
        flt = qdrant_filter(filters)
        if self.local:
            target = self.resolve_alias(collection) or collection
            if field_name not in self._local_facet_fields.get(target, {field_name}):
                raise FieldNotIndexed(field_name, target)
        with self._call(f"facet {collection}"), missing_index_as(FieldNotIndexed(field_name, collection)):
            response = self.client.facet(
                collection, field_name, facet_filter=flt, limit=max(limit, FACET_FETCH_LIMIT), exact=True
            )
        return top_facets(((h.value, h.count) for h in response.hits), limit)

    def query(
        self,
        collection: str,
        queries: Sequence[MemberQuery],
        filters: Filters | None = None,
        payload_fields: Sequence[str] | None = None,
    ) -> dict[str, list[ScoredPoint]]:
        """All member queries in one ``query_batch_points`` round trip."""
        if not queries:
            return {}
        flt = qdrant_filter(filters)
        payload: bool | list[str] = (
            True if payload_fields is None else bool(payload_fields) and unique(["id", *payload_fields])
        )
        checked = checked_queries(self._specs, collection, queries)
        params = self._member_params(collection, filters, flt, checked)
        requests = member_requests(checked, params, flt, payload)
        with self._call(f"query {collection}"):
            responses = self.client.query_batch_points(collection, requests=requests)
        read = payload is not False
        return {
            q.member: scored_points(response.points, read)
            for q, response in zip(queries, responses, strict=True)
        }

    def query_rrf(
        self,
        collection: str,
        queries: Sequence[MemberQuery],
        k: int,
        limit: int,
        filters: Filters | None = None,
    ) -> list[ScoredPoint] | None:
        """Qdrant's parametrized RRF over one prefetch per member (ranks from 0 there: ``k + 1``)."""
        if not queries:
            return []
        if limit <= 0:
            raise ValueError(f"limit must be > 0, got {limit}")
        flt = qdrant_filter(filters)
        checked = checked_queries(self._specs, collection, queries)
        prefetch = member_prefetches(checked, self._member_params(collection, filters, flt, checked), flt)
        with self._call(f"query {collection}"):
            response = self.client.query_points(
                collection,
                prefetch=prefetch,
                query=models.RrfQuery(rrf=models.Rrf(k=k + 1)),
                query_filter=flt,
                limit=limit,
                with_payload=True,
            )
        return scored_points(response.points, read_payload=True)

    def retrieve_keys(
        self, collection: str, keys: Sequence[str], with_vectors: bool = False
    ) -> list[StoredPoint]:
        """Points for the store keys, in the order asked; missing keys are left out."""
        wanted = unique(keys)
        if not wanted:
            return []
        with self._call(f"retrieve from {collection}"):
            records = self.client.retrieve(
                collection, ids=wanted, with_payload=True, with_vectors=with_vectors
            )
        return in_key_order(records, wanted, with_vectors)

    def scroll(
        self,
        collection: str,
        batch_size: int = 256,
        with_vectors: bool = False,
        filters: Filters | None = None,
    ) -> Iterator[StoredPoint]:
        """Every point in point-id order, ``batch_size`` per request."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        flt = qdrant_filter(filters)
        offset = None
        while True:
            with self._call(f"scroll {collection}"):
                records, offset = self.client.scroll(
                    collection,
                    scroll_filter=flt,
                    limit=batch_size,
                    offset=offset,
                    with_payload=True,
                    with_vectors=with_vectors,
                )
            for record in records:
                yield stored_point(record, with_vectors)
            if offset is None:
                return

    def collections(self) -> list[str]:
        """Names of existing collections."""
        with self._call("list collections"):
            return sorted(c.name for c in self.client.get_collections().collections)

    def drop_collection(self, name: str) -> None:
        """Delete the collection; Qdrant drops its aliases with it (missing: no-op)."""
        target = self.resolve_alias(name)
        if target is not None:
            raise ValueError(f"{name!r} is an alias (of {target!r}); drop the collection")
        with self._call(f"drop {name}"):
            self.client.delete_collection(name)
        self._forget()

    def resolve_alias(self, alias: str) -> str | None:
        """Collection the alias points at, or None."""
        with self._call("list aliases"):
            aliases = self.client.get_aliases().aliases
        return next((a.collection_name for a in aliases if a.alias_name == alias), None)

    def swap_alias(self, alias: str, collection: str) -> str | None:
        """Delete + create the alias in one ``update_collection_aliases`` call (atomic on the server)."""
        check_name(alias, "alias")
        existing = self.collections()
        if collection not in existing:
            raise CollectionNotFound(f"collection {collection!r} not found; existing: {existing}")
        if alias in existing:
            raise ValueError(f"alias {alias!r} clashes with a collection of that name")
        previous = self.resolve_alias(alias)
        operations = alias_swap(alias, collection, previous)
        with self._call(f"swap alias {alias}"):
            self.client.update_collection_aliases(change_aliases_operations=operations)
        self._forget(alias)
        return previous

    def index_settings(self, collection: str) -> IndexSettings:
        """The collection's settings as the server reports them (``get_collection``); qdrant-client's
        local mode keeps no index and reports its built-in defaults."""
        with self._call(f"describe {collection}"):
            config = self.client.get_collection(collection).config
        return stored_settings(config).searched_with(self.settings)

    def set_indexing(self, collection: str, enabled: bool) -> None:
        """``m=0`` while a bulk upload runs (no graph built meanwhile), the configured ``m`` after."""
        settings = self.settings if enabled else self.settings.bulk()
        with self._call(f"set indexing of {collection}"):
            self.client.update_collection(collection, hnsw_config=hnsw_diff(settings))
        self._graphs.forget(collection)

    def flush(self) -> None:
        """Nothing to do: every write uses ``wait=True`` (applied to the server's WAL before it
        returns), and local mode persists each write itself."""
        return None

    def optimize(self, collection: str) -> int:
        """The server builds indexes in the background; wait until the collection reports green."""
        with self._call(f"optimize {collection}"):
            info = self.client.get_collection(collection)  # missing: CollectionNotFound, in local mode too
        if not self.local:
            info = wait_until_green(self.client, collection)
        return -1 if info.indexed_vectors_count is None else int(info.indexed_vectors_count)

    def close(self) -> None:
        """Close the client (local mode persists and releases its files)."""
        with self._call("close"):
            self.client.close()
