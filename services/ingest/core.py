"""Ingest core: validate products, embed them in batches, assign clusters, upsert with backpressure.

Plain Python (no gRPC): the servicer and the bulk loader call it, tests too. The stream is read
into batches that go through a bounded ``asyncio.Queue`` to one writer; the reader waits when the
queue is full, so at most ``(queue_batches + 4) * batch_size`` products are in memory (one batch
being read, the queue, two being embedded, one being written). The writer embeds while the previous
batch is written and writes in stream order, so a product id sent twice ends as its later version. ``received == upserted + failed + skipped`` (a repeated id counts each time; ``skipped``
is only used by resumable loads and reindexing, which leave ids already present alone).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from prometheus_client import Counter

from domain.bundle import Bundle
from domain.lexical import LEXICAL_MEMBER, lexical_spec
from domain.payload import BUNDLE_VERSION_FIELD, CLUSTER_FIELD, NO_CLUSTER, collection_name, holds_version
from domain.schema import FASHION_SCHEMA, CatalogSchema
from services.common.config import IngestConfig
from services.ingest.items import ItemRejected, Product, load_image
from services.ingest.streams import aiter_chunks, to_thread_to_the_end
from services.storage.blobs import BlobStore
from services.storage.filters import WireCondition, parse_request_filters
from services.storage.port import Condition, Point, VectorStore

EmbedImages = Callable[[list[bytes]], Awaitable[list[dict[str, np.ndarray]]]]
MAX_REPORTED_ERRORS = 1000
EMBED_IN_FLIGHT = 2  # EmbedImages calls in flight while batches wait: the embedder decodes one, runs one

INGEST_ITEMS = Counter(
    "vitrine_ingest_items_total", "Products by outcome (rate() gives items/s)", ["outcome"]
)


@dataclass(frozen=True)
class ItemError:
    """A product that was skipped: position in the stream, id, gRPC code name, reason."""

    index: int
    id: str
    code: str
    message: str


@dataclass
class IngestSummary:
    """Outcome of one stream (``errors`` keeps the first MAX_REPORTED_ERRORS; ``failed`` counts all)."""

    collection: str
    received: int = 0
    upserted: int = 0
    failed: int = 0
    skipped: int = 0  # already present, left alone (``skip_existing`` only)
    errors: list[ItemError] = field(default_factory=list)

    def add_upserted(self, count: int) -> None:
        """Count items written to the store."""
        self.upserted += count
        INGEST_ITEMS.labels("upserted").inc(count)

    def add_error(self, index: int, product_id: str, code: str, message: str) -> None:
        """Count a failed item and keep its report while under the cap."""
        self.failed += 1
        INGEST_ITEMS.labels("failed").inc()
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(ItemError(index, product_id, code, message))


@dataclass(frozen=True)
class Prepared:
    """A product whose image passed the checks."""

    index: int
    product: Product
    image: bytes
    attributes: Mapping[str, object] = field(default_factory=dict)  # typed by the catalog schema


class EmbedderMismatch(RuntimeError):
    """The embedder's vectors do not fit the bundle this ingest writes (wrong members or sizes)."""


def payload_indexes(bundle: Bundle, schema: CatalogSchema = FASHION_SCHEMA) -> dict[str, str]:
    """An index per schema field, keyword on ``id`` and ``bundle_version``, integer on ``cluster.<member>``."""
    indexes = {"id": "keyword", BUNDLE_VERSION_FIELD: "keyword", **schema.payload_indexes()}
    indexes.update({f"{CLUSTER_FIELD}.{m}": "integer" for m in bundle.member_names})
    return indexes


def assign_clusters(
    vectors: Sequence[Mapping[str, np.ndarray]], centroids: Mapping[str, np.ndarray], members: Sequence[str]
) -> list[dict[str, int]]:
    """Per item, per member: argmax of the dot product with that member's centroids (-1 without)."""
    out: list[dict[str, int]] = [{} for _ in vectors]
    for member in members:
        if member not in centroids or not vectors:
            for row in out:
                row[member] = NO_CLUSTER
            continue
        stacked = np.stack([np.asarray(v[member], dtype=np.float32) for v in vectors])
        for row, cluster in zip(out, np.argmax(stacked @ centroids[member].T, axis=1), strict=True):
            row[member] = int(cluster)
    return out


class IngestCore:
    """Writes products of one bundle into ``<catalog>__<bundle>-<version>`` behind the catalog alias."""

    def __init__(
        self,
        store: VectorStore,
        bundle: Bundle,
        embed_images: EmbedImages,
        cfg: IngestConfig,
        catalog: str,
        blobs: BlobStore | None = None,
        schema: CatalogSchema = FASHION_SCHEMA,
    ) -> None:
        if cfg.batch_size < 1 or cfg.queue_batches < 1:
            raise ValueError(
                f"ingest.batch_size and ingest.queue_batches must be >= 1, got "
                f"{cfg.batch_size}, {cfg.queue_batches}"
            )
        self.store = store
        self.bundle = bundle
        self.embed_images = embed_images
        self.cfg = cfg
        self.catalog = catalog
        self.blobs = blobs
        self.schema = schema
        self.image_root = Path(cfg.allowed_image_root).resolve()
        self.centroids = bundle.load_centroids()
        self.vectors = {m.name: m.dim for m in bundle.members}
        self.lexical = lexical_spec(bundle.extra)  # None: the bundle has no lexical member
        self.sparse_vectors = (LEXICAL_MEMBER,) if self.lexical is not None else ()
        self.canonical = collection_name(catalog, bundle.name, bundle.version)
        self.collection = self.canonical
        self.mirror: str | None = None  # a same-version rebuild in progress also receives new writes
        self.reindex_lock = asyncio.Lock()
        self.index_lock = asyncio.Lock()  # one index build at a time (services/ingest/indexing.py)

    @property
    def max_in_flight(self) -> int:
        """Upper bound on products read from a stream but not yet written or failed."""
        return (self.cfg.queue_batches + 2 + EMBED_IN_FLIGHT) * self.cfg.batch_size

    def owns(self, collection: str | None) -> bool:
        """Whether a collection holds this bundle version (built directly or by a rebuild)."""
        return holds_version(collection, self.canonical)

    def open(self) -> str:
        """Ensure the write collection exists; point the alias at it when there is none yet.

        If the alias serves another bundle version, it is left alone: search keeps answering from
        it while new writes land here, until ``Reindex`` fills this collection and swaps the alias.
        """
        current = self.store.resolve_alias(self.catalog)
        self.collection = current if self.owns(current) else self.canonical
        self.store.ensure_collection(
            self.collection, self.vectors, payload_indexes(self.bundle, self.schema), self.sparse_vectors
        )
        if current is None:
            self.store.swap_alias(self.catalog, self.collection)
        return self.collection

    def read_collection(self) -> str:
        """The collection search sees (the alias target), else the write collection."""
        return self.store.resolve_alias(self.catalog) or self.collection

    # -- upsert ------------------------------------------------------------------------------

    async def upsert_stream(
        self,
        products: AsyncIterable[Product] | Iterable[Product],
        *,
        targets: Sequence[str] | None = None,
        skip_existing: bool = False,
    ) -> IngestSummary:
        """Ingest a stream of products; bad items are reported and skipped, good ones land.

        ``targets`` overrides the collections written (default: the write collection, plus a
        rebuild in progress); ``skip_existing`` leaves ids already in the first target alone.
        """
        targets = list(targets or [c for c in (self.collection, self.mirror) if c])
        summary = IngestSummary(collection=targets[0])
        queue: asyncio.Queue[list[Prepared] | None] = asyncio.Queue(maxsize=self.cfg.queue_batches)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read(products, queue, summary))
                group.create_task(self._write(queue, summary, targets, skip_existing))
        except BaseExceptionGroup as group_error:
            raise group_error.exceptions[0] from None
        await asyncio.to_thread(self.store.flush)
        return summary

    def _prepare(self, start: int, products: list[Product]) -> tuple[list[Prepared], list[ItemError]]:
        """Load and check the images of a chunk (runs in a worker thread)."""
        ready: list[Prepared] = []
        rejected: list[ItemError] = []
        for offset, product in enumerate(products):
            try:
                image = load_image(product, self.cfg, self.image_root)
                try:
                    attributes = self.schema.convert_attributes(product.attributes)
                except ValueError as exc:
                    raise ItemRejected("INVALID_ARGUMENT", str(exc)) from exc
                ready.append(Prepared(start + offset, product, image, attributes))
            except ItemRejected as exc:
                rejected.append(ItemError(start + offset, product.id, exc.code, exc.message))
        return ready, rejected

    async def _read(
        self,
        products: AsyncIterable[Product] | Iterable[Product],
        queue: asyncio.Queue,
        summary: IngestSummary,
    ) -> None:
        async for chunk in aiter_chunks(products, self.cfg.batch_size):
            start = summary.received
            summary.received += len(chunk)
            ready, rejected = await asyncio.to_thread(self._prepare, start, chunk)
            for error in rejected:
                summary.add_error(error.index, error.id, error.code, error.message)
            if ready:
                await queue.put(ready)  # waits while the writer is behind: backpressure
        await queue.put(None)

    async def _write(
        self, queue: asyncio.Queue, summary: IngestSummary, targets: list[str], skip_existing: bool
    ) -> None:
        pending: asyncio.Future | None = None
        embedding: deque[asyncio.Future] = deque()  # EmbedImages calls in flight, in stream order
        depth = 1 if skip_existing else EMBED_IN_FLIGHT  # a resumable load checks batch by batch
        finished = False
        try:
            while True:
                while not finished and len(embedding) < depth and not (embedding and queue.empty()):
                    if (batch := await queue.get()) is None:
                        finished = True
                        break
                    if skip_existing:
                        batch = await self._drop_existing(batch, targets[0], summary)
                    embedding.append(asyncio.ensure_future(self._embed_isolating(batch, summary)))
                if not embedding:
                    break
                embedded = await embedding.popleft()
                points = self._points(embedded)
                if pending is not None:
                    summary.add_upserted(await asyncio.shield(pending))
                pending = asyncio.ensure_future(
                    asyncio.to_thread(self._store_batch, embedded, points, targets)
                )
            if pending is not None:
                summary.add_upserted(await asyncio.shield(pending))
        except BaseException:
            for call in embedding:  # nothing is written from an embedding: cancel the rest
                call.cancel()
            await asyncio.gather(*embedding, return_exceptions=True)
            if pending is not None:
                # a store write in a worker thread cannot be cancelled: let it end before returning
                await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()  # retrieved: the stream's own error is the one raised
            raise

    async def _drop_existing(
        self, batch: list[Prepared], target: str, summary: IngestSummary
    ) -> list[Prepared]:
        present = await to_thread_to_the_end(self.store.retrieve, target, [p.product.id for p in batch])
        known = {p.id for p in present}
        skipped = sum(p.product.id in known for p in batch)
        summary.skipped += skipped
        INGEST_ITEMS.labels("skipped").inc(skipped)
        return [p for p in batch if p.product.id not in known]

    async def _embed_isolating(
        self, batch: list[Prepared], summary: IngestSummary
    ) -> list[tuple[Prepared, dict[str, np.ndarray]]]:
        """Embed a batch; when the embedder rejects it, split it to find and report the bad items."""
        if not batch:
            return []
        try:
            vectors = await self.embed_images([p.image for p in batch])
        except ValueError as exc:
            if len(batch) == 1:
                summary.add_error(batch[0].index, batch[0].product.id, "INVALID_ARGUMENT", f"image: {exc}")
                return []
            middle = len(batch) // 2
            return await self._embed_isolating(batch[:middle], summary) + await self._embed_isolating(
                batch[middle:], summary
            )
        self._check_vectors(vectors, len(batch))
        return list(zip(batch, vectors, strict=True))

    def _check_vectors(self, vectors: Sequence[Mapping[str, np.ndarray]], expected: int) -> None:
        if len(vectors) != expected:
            raise EmbedderMismatch(f"embedder returned {len(vectors)} results for {expected} images")
        for item in vectors:
            sizes = {member: int(np.asarray(v).size) for member, v in item.items()}
            if sizes != self.vectors:
                raise EmbedderMismatch(
                    f"embedder vectors {sizes} do not match bundle {self.bundle.name}-{self.bundle.version} "
                    f"members {self.vectors}; serve the same bundle to ingest and embedder"
                )

    def _points(self, embedded: list[tuple[Prepared, dict[str, np.ndarray]]]) -> list[Point]:
        clusters = assign_clusters([v for _, v in embedded], self.centroids, self.bundle.member_names)
        points = []
        for (item, vectors), cluster in zip(embedded, clusters, strict=True):
            product = item.product
            payload: dict[str, object] = {
                **item.attributes,
                "text": product.text,
                CLUSTER_FIELD: cluster,
                "bundle_version": self.bundle.version,
            }
            if product.image_uri:
                payload["image_uri"] = product.image_uri
            if self.lexical is not None:
                vectors = {**vectors, LEXICAL_MEMBER: self.lexical.document(product.text, item.attributes)}
            points.append(Point(id=product.id, vectors=vectors, payload=payload))
        return points

    def _store_batch(
        self, embedded: list[tuple[Prepared, dict[str, np.ndarray]]], points: list[Point], targets: list[str]
    ) -> int:
        """Blobs first (a point never exists without its image), then every target collection.

        A product that now comes by image_uri loses an older blob, so a reindex reads the uri. The
        store is flushed at every batch boundary, so a crash loses at most the batch being written
        and a re-run of the stream (same uuid5 ids) completes it without duplicates.
        """
        if self.blobs is not None:
            for item, _ in embedded:
                if item.product.image:
                    self.blobs.put(item.product.id, item.product.image)
                else:
                    self.blobs.delete([item.product.id])
        for target in targets:
            self.store.upsert(target, points)
        if points:
            self.store.flush()
        return len(points)

    # -- delete / count ----------------------------------------------------------------------

    def live_collections(self) -> list[str]:
        """Collections a delete must reach: what search reads, the write collection, a rebuild."""
        return list(dict.fromkeys(c for c in (self.read_collection(), self.collection, self.mirror) if c))

    def parse_filters(
        self, filters: Mapping[str, str] | None, conditions: Sequence[WireCondition] = ()
    ) -> dict[str, Condition]:
        """Wire filters and conditions typed by the catalog schema (ValueError names the field)."""
        return parse_request_filters(filters or {}, conditions, self.schema)

    def _delete_sync(self, ids: Sequence[str], filters: dict[str, Condition]) -> int:
        doomed = set(ids)
        if filters and self.blobs is not None:  # learn which products the filter reaches, for their blobs
            matched = {
                p.id for name in self.live_collections() for p in self.store.scroll(name, filters=filters)
            }
            doomed = matched & doomed if ids else matched
        counts = [
            self.store.delete(name, ids=list(ids), filters=filters or None)
            for name in self.live_collections()
        ]
        if self.blobs is not None:
            self.blobs.delete(doomed)
        self.store.flush()
        return max(counts, default=0)

    async def delete(
        self,
        ids: Sequence[str] = (),
        filters: Mapping[str, str] | None = None,
        conditions: Sequence[WireCondition] = (),
    ) -> int:
        """Delete products by id and/or wire filter from every live collection; returns how many."""
        parsed = self.parse_filters(filters, conditions)
        if any(not i for i in ids):
            raise ValueError("ids: empty product id")
        if not ids and not parsed:
            raise ValueError("delete needs ids or filters")
        return await asyncio.to_thread(self._delete_sync, list(ids), parsed)

    async def count(
        self, filters: Mapping[str, str] | None = None, conditions: Sequence[WireCondition] = ()
    ) -> tuple[int, str]:
        """Products (matching the wire filter) in the collection search reads, and its name."""
        parsed = self.parse_filters(filters, conditions)
        name = await asyncio.to_thread(self.read_collection)
        return await asyncio.to_thread(self.store.count, name, parsed or None), name
