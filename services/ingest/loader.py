"""Push a catalog folder (read by :func:`domain.catalog.iter_catalog`) through the Ingest RPC or into the core.

Loads are resumable: point ids are uuid5(product id), so a rerun rewrites the same points and
duplicates nothing; the direct load also skips ids already stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
from tqdm import tqdm

from domain.catalog import Product, catalog_table, iter_catalog
from services.ingest.core import IngestCore, IngestSummary
from services.ingest.wire import to_proto
from vitrine.v1 import ingest_pb2, ingest_pb2_grpc

log = logging.getLogger("vitrine.ingest.loader")


def with_image_bytes(products: Iterable[Product]) -> Iterator[Product]:
    """Products carrying their image bytes (for an ingest server that cannot read our disk)."""
    for product in products:
        path = Path(product.image_uri)
        data = path.read_bytes() if product.image_uri and path.is_file() else b""
        yield replace(product, image=data)


async def _requests(products: Iterator[Product], count: int, bar: tqdm) -> AsyncIterator[ingest_pb2.Product]:
    for _, product in zip(range(count), products, strict=False):
        bar.update(1)
        yield to_proto(product)


async def load_via_rpc(
    channel: grpc.aio.Channel,
    products: Iterable[Product],
    *,
    stream_size: int = 2000,
    total: int | None = None,
) -> IngestSummary:
    """Send products as Upsert streams of ``stream_size`` (a failure costs one stream, not the load).

    Returns the totals over every stream (per-item errors are logged, not kept).
    """
    stub = ingest_pb2_grpc.IngestStub(channel)
    report = IngestSummary(collection="")
    iterator = iter(products)
    with tqdm(total=total, unit="item", desc="ingest") as bar:
        while True:
            before = bar.n
            summary = await stub.Upsert(_requests(iterator, stream_size, bar))
            if bar.n == before:
                break
            report.received += summary.received
            report.upserted += summary.upserted
            report.failed += summary.failed
            report.collection = summary.collection
            for error in summary.errors:
                log.warning(
                    "item failed", extra={"id": error.id, "code": error.code, "reason": error.message}
                )
            bar.set_postfix(failed=report.failed)
    return report


async def build_indexes_via_rpc(
    channel: grpc.aio.Channel, timeout_s: float = 3600.0
) -> ingest_pb2.OptimizeSummary:
    """``Ingest.Optimize``: build the vector indexes after a load, saying so before and after.

    Without it the embedded store scans every vector per query. On Edge the ingest process (and, in
    the embedded stack, search) is busy until the build ends: about 36 s for 40k products.
    """
    print("building the vector indexes once (search answers again when done) ...", flush=True)
    summary = await ingest_pb2_grpc.IngestStub(channel).Optimize(
        ingest_pb2.OptimizeRequest(), timeout=timeout_s
    )
    indexed = f"{summary.indexed_vectors} vectors indexed" if summary.indexed_vectors >= 0 else "built"
    print(f"indexes of {', '.join(summary.collections)}: {indexed} in {summary.seconds:.0f}s", flush=True)
    return summary


async def load_direct(
    core: IngestCore, products: Iterable[Product], *, total: int | None = None, bulk: bool = False
) -> IngestSummary:
    """Stream products straight into an :class:`IngestCore`, skipping ids already stored, then optimize.

    ``bulk``: index building is switched off (``set_indexing(False)``, HNSW m=0) while the products
    upload, and the index is built once at the end; it is switched back on even when the load fails.
    """
    targets = [c for c in (core.collection, core.mirror) if c]
    if bulk:
        for name in targets:
            await asyncio.to_thread(core.store.set_indexing, name, False)
        log.info("bulk load: index building is off until the upload ends", extra={"collections": targets})
    begin = time.perf_counter()
    try:
        with tqdm(total=total, unit="item", desc="ingest (bulk)" if bulk else "ingest") as bar:

            def counted() -> Iterator[Product]:
                for product in products:
                    bar.update(1)
                    yield product

            summary = await core.upsert_stream(counted(), skip_existing=True)
    finally:
        if bulk:
            for name in targets:
                await asyncio.to_thread(core.store.set_indexing, name, True)
    uploaded_s = time.perf_counter() - begin
    for error in summary.errors:
        log.warning("item failed", extra={"id": error.id, "code": error.code, "reason": error.message})
    log.info(
        "upload done; building the index once (this can take minutes on a large catalog)",
        extra={"collection": core.collection, "upserted": summary.upserted, "upload_s": round(uploaded_s, 1)},
    )
    begin = time.perf_counter()
    await asyncio.to_thread(core.store.optimize, core.collection)  # build the index after the load
    log.info(
        "index built",
        extra={"collection": core.collection, "build_s": round(time.perf_counter() - begin, 1), "bulk": bulk},
    )
    return summary


__all__ = [
    "build_indexes_via_rpc",
    "catalog_table",
    "iter_catalog",
    "load_direct",
    "load_via_rpc",
    "to_proto",
    "with_image_bytes",
]
