"""Build the ingest service from config: ``build(cfg)`` is used by ``python -m services.ingest`` and the stack.

Ingest loads the bundle it writes, refuses an embedder that serves another one, opens the store
(or shares one it is given) and the collection, and from then on is SERVING only while the
embedder is.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from domain.bundle import Bundle, load_bundle
from domain.schema import load_schema
from services.common.config import VitrineConfig
from services.common.embed_client import EmbedderClient, EmbedderUnavailable
from services.common.service import Service, ServiceStore, servicer_server, upstream_embedder
from services.ingest.core import EmbedderMismatch, EmbedImages, IngestCore
from services.ingest.server import SERVICE_NAME, IngestServicer
from services.storage.blobs import open_blob_store
from services.storage.port import VectorStore
from vitrine.v1 import ingest_pb2_grpc

log = logging.getLogger("vitrine.ingest")
STARTUP_CHECK_S = 5.0


def embedder_client(cfg: VitrineConfig) -> EmbedderClient:
    """Ingest's embedder client: address, deadline, TLS and token from ``cfg.ingest``."""
    return upstream_embedder(cfg.ingest)


def build_core(cfg: VitrineConfig, store: VectorStore, bundle: Bundle, embed: EmbedImages) -> IngestCore:
    """An ingest core for the configured catalog, with a blob folder where configured."""
    blobs = open_blob_store(cfg.blobs, cfg.store)
    if blobs is None:
        log.warning(
            "blobs are off: image bytes pushed to Upsert are not kept, so Reindex cannot re-embed "
            "those products and the web page shows no image for them (set VITRINE_BLOBS_DIR)"
        )
    else:
        log.info("keeping pushed image bytes", extra={"blobs": repr(blobs)})
    schema = load_schema(cfg.catalog.schema)
    return IngestCore(store, bundle, embed, cfg.ingest, cfg.store.catalog, blobs, schema)


async def check_embedder_bundle(client: EmbedderClient, bundle: Bundle) -> None:
    """Refuse to start against an embedder serving another bundle; warn when it cannot be asked."""
    try:
        info = await client.bundle_info(timeout=min(client.timeout_s, STARTUP_CHECK_S))
    except EmbedderUnavailable as exc:
        log.warning("embedder not reachable yet; vectors are checked per batch", extra={"error": str(exc)})
        return
    theirs = (info.name, info.version, [(m.name, m.dim) for m in info.members])
    ours = (bundle.name, bundle.version, [(m.name, m.dim) for m in bundle.members])
    if theirs != ours:
        raise EmbedderMismatch(f"embedder serves {theirs}, ingest was given {ours}")


def build(cfg: VitrineConfig, store: VectorStore | None = None) -> Service:
    """The ingest service; with ``store`` it shares that store (the caller closes it), else opens its own."""
    servicer = IngestServicer()
    add = ingest_pb2_grpc.add_IngestServicer_to_server
    server = servicer_server(cfg.ingest_server, SERVICE_NAME, add, servicer)
    client = embedder_client(cfg)
    stores = ServiceStore(cfg.store, store)

    async def prepare() -> dict[str, Any]:
        bundle = load_bundle(cfg.embedder.bundle)
        shared = await stores.open()
        await check_embedder_bundle(client, bundle)
        core = build_core(cfg, shared, bundle, client)
        collection = await asyncio.to_thread(core.open)
        read = await asyncio.to_thread(core.read_collection)
        if not core.owns(read):
            log.warning(
                "search reads a collection built by another bundle version; new writes go to this "
                "version's collection, and Ingest.Reindex fills it and swaps the alias",
                extra={"alias": cfg.store.catalog, "target": read, "expected": collection},
            )
        servicer.core = core
        return {"collection": collection}

    return Service("ingest", server, prepare, upstreams=[client.channel], close=[client.close, stores.close])


__all__ = ["STARTUP_CHECK_S", "build", "build_core", "check_embedder_bundle", "embedder_client"]
