"""Build the embedder service from config: ``build(cfg)`` is what ``python -m services.embedder`` runs."""

from __future__ import annotations

import asyncio
from typing import Any

from services.common.config import VitrineConfig
from services.common.service import Service, servicer_server
from services.embedder.core import EmbedderCore
from services.embedder.encoder import EnsembleEncoder
from services.embedder.server import SERVICE_NAME, EmbedderServicer
from vitrine.v1 import embedder_pb2_grpc


def build(cfg: VitrineConfig) -> Service:
    """The embedder service: SERVING once the bundle's models are loaded (it has no upstream)."""
    servicer = EmbedderServicer()
    add = embedder_pb2_grpc.add_EmbedderServicer_to_server
    server = servicer_server(cfg.embedder_server, SERVICE_NAME, add, servicer)

    async def prepare() -> dict[str, Any]:
        encoder = await asyncio.to_thread(EnsembleEncoder.load, cfg.embedder)
        servicer.core = EmbedderCore(encoder, cfg.embedder)
        return {"bundle": cfg.embedder.bundle}

    async def close() -> None:
        if servicer.core is not None:
            await servicer.core.close()

    return Service("embedder", server, prepare, close=[close])


__all__ = ["build"]
