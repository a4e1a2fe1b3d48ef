"""Re-embed the catalog into a fresh collection while search keeps answering, then swap the alias.

* The alias serves an older bundle version: the new version's collection (which already receives
  new writes) is filled from the old catalog, skipping ids written since, then the alias moves.
* The alias already serves this version: a rebuild collection ``<name>.r<timestamp>`` is filled
  while new writes go to both, then the alias moves to the rebuild.

Each stored product is re-embedded from its blob (streamed bytes kept at ingest) or its
``image_uri``; with ``source_dir`` the catalog folder is read instead. The old collection is kept
(for rollback); drop it with ``python -m services.ingest drop NAME``.

The new collection's index is built before the swap. With Qdrant that happens in the server; with
Edge the build holds this process's interpreter, so RPCs in this process (a co-hosted search too)
stall, without failing, until it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from domain.catalog import Product, catalog_table, iter_catalog
from domain.payload import REBUILD_SEPARATOR, RESERVED_FIELDS
from services.ingest.core import IngestCore, IngestSummary, payload_indexes
from services.storage.port import StoredPoint

log = logging.getLogger("vitrine.ingest.reindex")


class ReindexRefused(RuntimeError):
    """A reindex cannot start now (one is running, or there is nothing to read from)."""


class ReindexIncomplete(RuntimeError):
    """Too many products failed to re-embed; the alias was left where it was."""


@dataclass(frozen=True)
class ReindexResult:
    """What a reindex built and swapped."""

    old_collection: str
    new_collection: str
    summary: IngestSummary


def stored_product(point: StoredPoint, core: IngestCore) -> Product:
    """A product rebuilt from a stored point: blob bytes when kept, else its image_uri."""
    payload = point.payload
    image = core.blobs.get(point.id) if core.blobs is not None else None
    attributes = {k: str(v) for k, v in payload.items() if k not in RESERVED_FIELDS}
    return Product(
        id=point.id,
        image=image or b"",
        image_uri=str(payload.get("image_uri", "")),
        text=str(payload.get("text", "")),
        attributes=attributes,
    )


def _stored_products(core: IngestCore, source: str) -> Iterator[Product]:
    for point in core.store.scroll(source, batch_size=core.cfg.batch_size * 4):
        yield stored_product(point, core)


async def reindex(core: IngestCore, source_dir: str = "") -> ReindexResult:
    """Build the new collection, fill it, optimize it, and swap the catalog alias onto it."""
    if core.reindex_lock.locked():
        raise ReindexRefused("a reindex is already running")
    if source_dir:
        catalog_table(source_dir)  # fail before building anything
    async with core.reindex_lock:
        old = await asyncio.to_thread(core.store.resolve_alias, core.catalog)
        if old is None and not source_dir:
            raise ReindexRefused(f"alias {core.catalog!r} points nowhere and no source_dir was given")
        if old is not None and core.owns(old):
            dest = f"{core.canonical}{REBUILD_SEPARATOR}{time.strftime('%Y%m%d%H%M%S')}"
            await asyncio.to_thread(
                core.store.ensure_collection,
                dest,
                core.vectors,
                payload_indexes(core.bundle, core.schema),
                core.sparse_vectors,
            )
            core.mirror = dest
        else:
            dest = core.collection
        try:
            if source_dir:
                products = iter_catalog(source_dir)
                summary = await core.upsert_stream(products, targets=[dest])
            else:
                products = _stored_products(core, old)
                summary = await core.upsert_stream(products, targets=[dest], skip_existing=True)
            if summary.failed > core.cfg.reindex_max_failed:
                raise ReindexIncomplete(
                    f"{summary.failed} products failed (ingest.reindex_max_failed={core.cfg.reindex_max_failed}); "
                    f"alias {core.catalog!r} stays on {old!r}, partial build kept in {dest!r}; first errors: "
                    f"{[e.message for e in summary.errors[:3]]}"
                )
            await asyncio.to_thread(core.store.optimize, dest)
            await asyncio.to_thread(core.store.flush)
            await asyncio.to_thread(core.store.swap_alias, core.catalog, dest)
            core.collection = dest
        finally:
            core.mirror = None
        log.info(
            "reindexed",
            extra={"old": old, "new": dest, "upserted": summary.upserted, "failed": summary.failed},
        )
        return ReindexResult(old or "", dest, summary)
