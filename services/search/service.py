"""Build the search service from config: ``build(cfg)`` is used by ``python -m services.search`` and the stack.

Search learns its bundle from the embedder (a configured bundle file must match it), opens the
store (or shares one it is given), and from then on is SERVING only while the embedder is.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from domain.bundle import Bundle, FusionSpec, MemberSpec, load_bundle
from domain.payload import collection_name, holds_version
from domain.schema import load_schema
from services.common.config import VitrineConfig
from services.common.embed_client import EmbedderClient, EmbedderUnavailable
from services.common.service import Service, ServiceStore, servicer_server, upstream_embedder
from services.search.core import SearchCore
from services.search.server import SERVICE_NAME, SearchServicer
from services.storage.port import VectorStore
from vitrine.v1 import embedder_pb2, search_pb2_grpc

log = logging.getLogger("vitrine.search")
RETRY_S = (0.5, 1.0, 2.0, 5.0)


def bundle_from_info(info: embedder_pb2.BundleInfo) -> Bundle:
    """The parts of a bundle search needs (names, dims, weights, default fusion) from GetBundle."""
    members = tuple(
        MemberSpec(
            name=m.name,
            arch=m.arch,
            dim=m.dim,
            image_size=m.image_size or 224,
            pretrained=m.pretrained,
            weight=m.weight,
            colour_dims=m.colour_dims,
        )
        for m in info.members
    )
    fusion = FusionSpec(method=info.default_fusion) if info.default_fusion else FusionSpec()
    return Bundle(name=info.name, version=info.version, members=members, fusion=fusion)


async def fetch_bundle(cfg: VitrineConfig, embedder: EmbedderClient) -> Bundle:
    """The embedder's bundle (retried while it starts); a configured bundle file must match it."""
    attempt = 0
    while True:
        try:
            info = await embedder.bundle_info()
            break
        except EmbedderUnavailable as exc:
            delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
            log.warning("embedder not ready, retrying", extra={"error": str(exc), "retry_in_s": delay})
            await asyncio.sleep(delay)
            attempt += 1
    served = bundle_from_info(info)
    if not cfg.search.bundle:
        return served
    bundle = load_bundle(cfg.search.bundle)
    if (bundle.name, bundle.version, bundle.member_names) != (
        served.name,
        served.version,
        served.member_names,
    ):
        raise RuntimeError(
            f"search bundle {bundle.name}-{bundle.version} {list(bundle.member_names)} differs from the "
            f"embedder's {served.name}-{served.version} {list(served.member_names)}; serve the same bundle"
        )
    return bundle


def embedder_client(cfg: VitrineConfig) -> EmbedderClient:
    """Search's embedder client: address, deadline, TLS and token from ``cfg.search``."""
    return upstream_embedder(cfg.search, wait_for_ready=False)


def build(cfg: VitrineConfig, store: VectorStore | None = None) -> Service:
    """The search service; with ``store`` it shares that store (the caller closes it), else opens its own."""
    servicer = SearchServicer()
    add = search_pb2_grpc.add_SearchServicer_to_server
    server = servicer_server(cfg.search_server, SERVICE_NAME, add, servicer)
    embedder = embedder_client(cfg)
    schema = load_schema(cfg.catalog.schema)  # a bad schema file stops startup, naming the key
    stores = ServiceStore(cfg.store, store)

    async def prepare() -> dict[str, Any]:
        bundle = await fetch_bundle(cfg, embedder)
        shared = await stores.open()
        expected = collection_name(cfg.store.catalog, bundle.name, bundle.version)
        target = await asyncio.to_thread(shared.resolve_alias, cfg.store.catalog)
        if not holds_version(target, expected):
            log.warning(
                "catalog alias does not point at this bundle's collection",
                extra={"alias": cfg.store.catalog, "target": target, "expected": expected},
            )
        servicer.core = SearchCore(cfg.search, shared, bundle, embedder, cfg.store.catalog, schema)
        return {"bundle": f"{bundle.name}-{bundle.version}"}

    return Service(
        "search", server, prepare, upstreams=[embedder.channel], close=[embedder.close, stores.close]
    )


__all__ = ["bundle_from_info", "build", "embedder_client", "fetch_bundle"]
