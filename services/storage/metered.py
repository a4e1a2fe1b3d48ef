"""Prometheus metrics for any storage adapter: a port implementation that times its inner adapter.

``open_store`` wraps every adapter in :class:`MeteredStore`, so ``vitrine_store_seconds{backend,op}``
(latency) and ``vitrine_store_errors_total{backend,op}`` cover Edge and Qdrant alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

from services.storage.port import (
    FacetCount,
    Filters,
    MemberQuery,
    PayloadIndexes,
    Point,
    ScoredPoint,
    StoredPoint,
    VectorStore,
)
from services.storage.settings import IndexSettings

STORE_SECONDS = Histogram(
    "vitrine_store_seconds",
    "Storage call latency",
    ["backend", "op"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 300),
)
STORE_ERRORS = Counter("vitrine_store_errors_total", "Storage calls that raised", ["backend", "op"])
STORE_POINTS = Counter("vitrine_store_points_upserted_total", "Points written by upsert", ["backend"])


class MeteredStore(VectorStore):
    """Delegates every port call to ``inner`` and records its latency and failures."""

    def __init__(self, inner: VectorStore, backend: str) -> None:
        self.inner = inner
        self.backend = backend
        self.holds_interpreter = inner.holds_interpreter

    @contextmanager
    def _timed(self, op: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except Exception:
            STORE_ERRORS.labels(self.backend, op).inc()
            raise
        finally:
            STORE_SECONDS.labels(self.backend, op).observe(time.perf_counter() - started)

    def ensure_collection(
        self,
        name: str,
        vectors: Mapping[str, int],
        payload_indexes: PayloadIndexes = (),
        sparse_vectors: Sequence[str] = (),
    ) -> None:
        """See :meth:`VectorStore.ensure_collection`."""
        with self._timed("ensure_collection"):
            self.inner.ensure_collection(name, vectors, payload_indexes, sparse_vectors)

    def upsert(self, collection: str, points: Sequence[Point]) -> None:
        """See :meth:`VectorStore.upsert`."""
        with self._timed("upsert"):
            self.inner.upsert(collection, points)
        STORE_POINTS.labels(self.backend).inc(len(points))

    def delete(self, collection: str, ids: Sequence[str] = (), filters: Filters | None = None) -> int:
        """See :meth:`VectorStore.delete`."""
        with self._timed("delete"):
            return self.inner.delete(collection, ids, filters)

    def count(self, collection: str, filters: Filters | None = None) -> int:
        """See :meth:`VectorStore.count`."""
        with self._timed("count"):
            return self.inner.count(collection, filters)

    def facet(
        self, collection: str, field_name: str, limit: int, filters: Filters | None = None
    ) -> list[FacetCount]:
        """See :meth:`VectorStore.facet`."""
        with self._timed("facet"):
            return self.inner.facet(collection, field_name, limit, filters)

    def query(
        self,
        collection: str,
        queries: Sequence[MemberQuery],
        filters: Filters | None = None,
        payload_fields: Sequence[str] | None = None,
    ) -> dict[str, list[ScoredPoint]]:
        """See :meth:`VectorStore.query`."""
        with self._timed("query"):
            return self.inner.query(collection, queries, filters, payload_fields)

    def query_rrf(
        self,
        collection: str,
        queries: Sequence[MemberQuery],
        k: int,
        limit: int,
        filters: Filters | None = None,
    ) -> list[ScoredPoint] | None:
        """See :meth:`VectorStore.query_rrf`."""
        with self._timed("query_rrf"):
            return self.inner.query_rrf(collection, queries, k, limit, filters)

    def retrieve_keys(
        self, collection: str, keys: Sequence[str], with_vectors: bool = False
    ) -> list[StoredPoint]:
        """See :meth:`VectorStore.retrieve_keys`."""
        with self._timed("retrieve"):
            return self.inner.retrieve_keys(collection, keys, with_vectors)

    def scroll(
        self,
        collection: str,
        batch_size: int = 256,
        with_vectors: bool = False,
        filters: Filters | None = None,
    ) -> Iterator[StoredPoint]:
        """See :meth:`VectorStore.scroll` (the whole iteration is not timed; it is paced by its reader)."""
        return self.inner.scroll(collection, batch_size, with_vectors, filters)

    def collections(self) -> list[str]:
        """See :meth:`VectorStore.collections`."""
        with self._timed("collections"):
            return self.inner.collections()

    def drop_collection(self, name: str) -> None:
        """See :meth:`VectorStore.drop_collection`."""
        with self._timed("drop_collection"):
            self.inner.drop_collection(name)

    def resolve_alias(self, alias: str) -> str | None:
        """See :meth:`VectorStore.resolve_alias`."""
        with self._timed("resolve_alias"):
            return self.inner.resolve_alias(alias)

    def swap_alias(self, alias: str, collection: str) -> str | None:
        """See :meth:`VectorStore.swap_alias`."""
        with self._timed("swap_alias"):
            return self.inner.swap_alias(alias, collection)

    def flush(self) -> None:
        """See :meth:`VectorStore.flush`."""
        with self._timed("flush"):
            self.inner.flush()

    def optimize(self, collection: str) -> int:
        """See :meth:`VectorStore.optimize`."""
        with self._timed("optimize"):
            return self.inner.optimize(collection)

    def index_settings(self, collection: str) -> IndexSettings:
        """See :meth:`VectorStore.index_settings`."""
        with self._timed("index_settings"):
            return self.inner.index_settings(collection)

    def set_indexing(self, collection: str, enabled: bool) -> None:
        """See :meth:`VectorStore.set_indexing`."""
        with self._timed("set_indexing"):
            self.inner.set_indexing(collection, enabled)

    def close(self) -> None:
        """See :meth:`VectorStore.close`."""
        self.inner.close()
