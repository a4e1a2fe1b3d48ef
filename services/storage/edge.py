"""Qdrant Edge adapter: embedded shards in a data directory (the default backend).

Layout under ``path``::

    collections/<name>/   one EdgeShard per collection (Edge has no collections of its own)
    aliases.json          {"alias": "collection"}, replaced atomically (temp file + os.replace)

Edge locks a shard's WAL: one process (one ``EdgeStore``) opens a data directory at a time; shards
are opened on first use and kept open until ``close``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from services.storage.alias_file import read_aliases, write_aliases
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
from services.storage.edge_filters import (
    edge_errors,
    edge_filter,
    edge_index_schema,
    edge_vector,
    payload_selector,
)
from services.storage.edge_requests import member_prefetches, member_requests
from services.storage.edge_settings import edge_config, search_params, shard_settings, shard_vectors
from services.storage.point_keys import PointKeys
from services.storage.port import (
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
from services.storage.scan_plan import FilterGraph, MemberPlanner
from services.storage.settings import IndexSettings

ALIASES_FILE = "aliases.json"
COLLECTIONS_DIR = "collections"
# Edge 0.9 persists the shard config here; we read it to learn the named vectors of a shard.
EDGE_CONFIG_FILE = "edge_config.json"
FACET_FETCH_LIMIT = 10_000  # values asked of the store before ordering and cutting to the limit


class EdgeStore(VectorStore):
    """:class:`VectorStore` over ``qdrant-edge-py`` shards in one data directory."""

    holds_interpreter = True  # Edge 0.9 keeps the GIL through every call (measured: a query, a build)

    def __init__(self, path: str | os.PathLike[str], settings: IndexSettings | None = None) -> None:
        self.root = Path(path)
        self.settings = settings or IndexSettings()
        self._planner = MemberPlanner.of(self.settings, search_params)
        self.collections_dir = self.root / COLLECTIONS_DIR
        self.collections_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()  # guards _shards and the alias map
        self._shards: dict[str, qe.EdgeShard] = {}
        self._aliases = read_aliases(self.root / ALIASES_FILE)
        self._specs = VectorSpecs(lambda name: shard_vectors(self._stored_config(name)))
        self._graphs = PerCollection(self._read_filter_graph)
        self._keys = PointKeys()  # hit ids -> key strings, remembered

    # -- shards and aliases ------------------------------------------------------------------

    def _resolve(self, name: str) -> str:
        with self._lock:
            return self._aliases.get(name, name)

    def _shard_dir(self, collection: str) -> Path:
        return self.collections_dir / check_name(collection)

    def _shard(self, name: str) -> tuple[str, qe.EdgeShard]:
        """The open shard behind a collection or alias name (opened on first use)."""
        collection = self._resolve(name)
        with self._lock:
            shard = self._shards.get(collection)
            if shard is not None:
                return collection, shard
            directory = self._shard_dir(collection)
            if not (directory / EDGE_CONFIG_FILE).exists():
                raise CollectionNotFound(f"collection {name!r} not found; existing: {self.collections()}")
            with edge_errors(f"open {directory} (is it open in another process?)"):
                shard = qe.EdgeShard.load(str(directory))
            self._shards[collection] = shard
            return collection, shard

    def _stored_config(self, collection: str) -> dict[str, Any]:
        return json.loads((self._shard_dir(collection) / EDGE_CONFIG_FILE).read_text())

    def _read_filter_graph(self, collection: str) -> FilterGraph:
        _, shard = self._shard(collection)
        with edge_errors(f"describe {collection}"):
            schema = shard.info().payload_schema
        return FilterGraph.of_collection(shard_settings(self._stored_config(collection)), schema)

    def _forget(self, name: str) -> None:
        self._specs.forget(name)
        self._graphs.forget(name)

    def _member_params(
        self,
        target: str,
        shard: qe.EdgeShard,
        filters: Filters | None,
        flt: qe.Filter | None,
        queries: Sequence[MemberQuery],
    ) -> list[qe.SearchParams | None]:
        """Search params per query (see :mod:`services.storage.scan_plan`)."""

        def estimate() -> int:
            with edge_errors(f"count {target}"):
                return int(shard.count(qe.CountRequest(filter=flt, exact=False)))

        graph, dims = self._graphs.get(target), self._specs.get(target)
        return self._planner.plan(queries, filters, graph, dims, estimate)

    def index_settings(self, collection: str) -> IndexSettings:
        """The settings the shard was built with, read back from its ``edge_config.json``."""
        target, _ = self._shard(collection)
        return shard_settings(self._stored_config(target)).searched_with(self.settings)

    def set_indexing(self, collection: str, enabled: bool) -> None:
        """Reopen the shard with the graph off (``m=0``, bulk upload) or with the configured ``m``."""
        target, shard = self._shard(collection)
        with self._lock:
            config = self._stored_config(target)
            current = shard_settings(config)
            wanted = dataclasses.replace(current, m=self.settings.m) if enabled else current.bulk()
            if wanted == current:
                return
            config_obj = edge_config(shard_vectors(config), wanted, config.get("on_disk_payload"))
            directory = self._shard_dir(target)
            with edge_errors(f"reopen {directory}"):
                shard.flush()
                shard.close()
                self._shards.pop(target, None)
                self._shards[target] = qe.EdgeShard.load(str(directory), config_obj)
        self._graphs.forget(target)

    # -- port ---------------------------------------------------------------------------------

    def ensure_collection(
        self,
        name: str,
        vectors: Mapping[str, int],
        payload_indexes: PayloadIndexes = (),
        sparse_vectors: Sequence[str] = (),
    ) -> None:
        """Create the shard (cosine named vectors, IDF sparse vectors) if missing; add missing indexes."""
        check_name(name)
        indexes = index_types(payload_indexes)
        wanted = wanted_spec(name, vectors, sparse_vectors)
        with self._lock:
            if name in self._aliases:
                raise ValueError(f"{name!r} is an alias (of {self._aliases[name]!r}), not a collection")
            directory = self._shard_dir(name)
            if (directory / EDGE_CONFIG_FILE).exists():
                existing = shard_vectors(self._stored_config(name))
                if existing != wanted:
                    raise StoreError(f"collection {name!r} has vectors {existing}, wanted {wanted}")
                _, shard = self._shard(name)
            else:
                with edge_errors(f"create {directory}"):
                    shard = qe.EdgeShard.create(str(directory), edge_config(wanted, self.settings.stored))
                self._shards[name] = shard
            with edge_errors(f"index {name}"):
                present = set(shard.info().payload_schema)
                for field_name, spec in indexes.items():
                    if field_name not in present:
                        shard.update(
                            qe.UpdateOperation.create_field_index(field_name, edge_index_schema(spec))
                        )
        self._forget(name)

    def upsert(self, collection: str, points: Sequence[Point]) -> None:
        """Insert or replace points; within one call a repeated product id keeps the later point."""
        if not points:
            return
        target, shard = self._shard(collection)
        edge_points = []
        for point in last_wins(points):
            self._specs.check(target, point.vectors, f"point {point.id!r}")
            vectors = {
                member: edge_vector(values, f"point {point.id!r}") for member, values in point.vectors.items()
            }
            edge_points.append(qe.Point(point_id(point.id), vectors, payload_of(point)))
        with edge_errors(f"upsert into {target}"):
            shard.update(qe.UpdateOperation.upsert_points(edge_points))

    def delete(self, collection: str, ids: Sequence[str] = (), filters: Filters | None = None) -> int:
        """Delete by ids and/or filter; returns the number of points that matched before deleting."""
        if not ids and not filters:
            raise ValueError("delete needs ids or filters (refusing to delete everything)")
        target, shard = self._shard(collection)
        flt = edge_filter(filters, unique(ids))
        with edge_errors(f"delete from {target}"):
            matched = shard.count(qe.CountRequest(exact=True, filter=flt))
            if matched:
                shard.update(qe.UpdateOperation.delete_points_by_filter(flt))
        return int(matched)

    def count(self, collection: str, filters: Filters | None = None) -> int:
        """Exact count of points (matching ``filters``)."""
        target, shard = self._shard(collection)
        flt = edge_filter(filters)
        with edge_errors(f"count {target}"):
            return int(shard.count(qe.CountRequest(exact=True, filter=flt)))

    def facet(
        self, collection: str, field_name: str, limit: int, filters: Filters | None = None
    ) -> list[FacetCount]:
        """Edge's exact facet over the matching points (needs a keyword or integer index)."""
        if limit <= 0:
            raise ValueError(f"limit must be > 0, got {limit}")
        target, shard = self._shard(collection)
        request = qe.FacetRequest(
            field_name, limit=max(limit, FACET_FETCH_LIMIT), exact=True, filter=edge_filter(filters)
        )
        try:
            response = shard.facet(request)
        except Exception as exc:
            if type(exc) is Exception and "index" in str(exc):
                raise FieldNotIndexed(field_name, target) from exc
            raise StoreError(f"edge facet {target}: {exc}") from exc
        return top_facets(((h.value, h.count) for h in response.hits), limit)

    def query(
        self,
        collection: str,
        queries: Sequence[MemberQuery],
        filters: Filters | None = None,
        payload_fields: Sequence[str] | None = None,
    ) -> dict[str, list[ScoredPoint]]:
        """All member queries as one ``query_batch`` call (one planned pass over the segments)."""
        if not queries:
            return {}
        target, shard = self._shard(collection)
        flt = edge_filter(filters)
        payload = payload_selector(payload_fields)
        checked = checked_queries(self._specs, target, queries)
        params = self._member_params(target, shard, filters, flt, checked)
        requests = member_requests(checked, params, flt, payload)
        with edge_errors(f"query {target}"):
            results = shard.query_batch(qe.QueryBatchRequest(requests))
        read, keys = payload is not False, self._keys
        return {q.member: scored_points(hits, read, keys) for q, hits in zip(queries, results, strict=True)}

    def query_rrf(
        self,
        collection: str,
        queries: Sequence[MemberQuery],
        k: int,
        limit: int,
        filters: Filters | None = None,
    ) -> list[ScoredPoint] | None:
        """Edge's own RRF over one prefetch per member (Edge counts ranks from 0, hence ``k + 1``)."""
        if not queries:
            return []
        target, shard = self._shard(collection)
        flt = edge_filter(filters)
        checked = checked_queries(self._specs, target, queries)
        prefetches = member_prefetches(
            checked, self._member_params(target, shard, filters, flt, checked), flt
        )
        if limit <= 0:
            raise ValueError(f"limit must be > 0, got {limit}")
        request = qe.QueryRequest(
            limit=limit, prefetches=prefetches, query=qe.Fusion.Rrf(k + 1), filter=flt, with_payload=True
        )
        with edge_errors(f"query {target}"):
            return scored_points(shard.query(request), read_payload=True, key_of=self._keys)

    def retrieve_keys(
        self, collection: str, keys: Sequence[str], with_vectors: bool = False
    ) -> list[StoredPoint]:
        """Points for the store keys, in the order asked; missing keys are left out."""
        wanted = unique(keys)
        if not wanted:
            return []
        target, shard = self._shard(collection)
        with edge_errors(f"retrieve from {target}"):
            records = shard.retrieve(wanted, with_payload=True, with_vector=with_vectors)
        return in_key_order(records, wanted, with_vectors)

    def scroll(
        self,
        collection: str,
        batch_size: int = 256,
        with_vectors: bool = False,
        filters: Filters | None = None,
    ) -> Iterator[StoredPoint]:
        """Every point in point-id order, ``batch_size`` per Edge call."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        target, shard = self._shard(collection)
        flt = edge_filter(filters)
        offset = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=batch_size, filter=flt, with_payload=True, with_vector=with_vectors
            )
            with edge_errors(f"scroll {target}"):
                records, offset = shard.scroll(request)
            for record in records:
                yield stored_point(record, with_vectors)
            if offset is None:
                return

    def collections(self) -> list[str]:
        """Shard directories under ``collections/``."""
        return sorted(p.name for p in self.collections_dir.iterdir() if (p / EDGE_CONFIG_FILE).exists())

    def drop_collection(self, name: str) -> None:
        """Close and delete the shard, and the aliases that pointed at it (missing: no-op)."""
        with self._lock:
            if name in self._aliases:
                raise ValueError(f"{name!r} is an alias (of {self._aliases[name]!r}); drop the collection")
            shard = self._shards.pop(name, None)
            if shard is not None:
                with edge_errors(f"close {name}"):
                    shard.close()
            shutil.rmtree(self._shard_dir(name), ignore_errors=True)
            remaining = {a: c for a, c in self._aliases.items() if c != name}
            if remaining != self._aliases:
                self._aliases = write_aliases(self.root / ALIASES_FILE, remaining)
        self._forget(name)

    def resolve_alias(self, alias: str) -> str | None:
        """Collection the alias points at, or None."""
        with self._lock:
            return self._aliases.get(alias)

    def swap_alias(self, alias: str, collection: str) -> str | None:
        """Point ``alias`` at ``collection`` by atomically replacing aliases.json."""
        check_name(alias, "alias")
        with self._lock:
            if not (self._shard_dir(collection) / EDGE_CONFIG_FILE).exists():
                raise CollectionNotFound(
                    f"collection {collection!r} not found; existing: {self.collections()}"
                )
            if (self._shard_dir(alias) / EDGE_CONFIG_FILE).exists():
                raise ValueError(f"alias {alias!r} clashes with a collection of that name")
            previous = self._aliases.get(alias)
            self._aliases = write_aliases(self.root / ALIASES_FILE, {**self._aliases, alias: collection})
            return previous

    def flush(self) -> None:
        """Flush every open shard."""
        with self._lock:
            for name, shard in self._shards.items():
                with edge_errors(f"flush {name}"):
                    shard.flush()

    def optimize(self, collection: str) -> int:
        """Run Edge's optimizers (HNSW for segments past the indexing threshold). Edge 0.9 keeps the
        GIL for the whole build: other threads of this process stall until it returns (36 s for 40k
        points x 4 x 128 dims on 2 cores). Call it after a load, not mid-traffic."""
        target, shard = self._shard(collection)
        with edge_errors(f"optimize {target}"):
            shard.optimize()
            return int(shard.info().indexed_vectors_count)

    def close(self) -> None:
        """Flush and close every shard (releases the WAL locks)."""
        with self._lock:
            shards, self._shards = self._shards, {}
            for name, shard in shards.items():
                with edge_errors(f"close {name}"):
                    shard.flush()
                    shard.close()
