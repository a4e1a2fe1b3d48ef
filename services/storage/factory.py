"""Pick the storage adapter from config."""

from __future__ import annotations

from services.common.config import StoreConfig
from services.storage.metered import MeteredStore
from services.storage.port import VectorStore
from services.storage.settings import index_settings

BACKENDS = ("edge", "qdrant")


def open_store(cfg: StoreConfig) -> VectorStore:
    """The adapter for ``cfg.backend``: ``edge`` (shards under ``cfg.path``) or ``qdrant`` (``cfg.url``).

    Either is wrapped in :class:`MeteredStore` (Prometheus latency/error metrics per operation).
    """
    if cfg.backend == "edge":
        from services.storage.edge import EdgeStore

        return MeteredStore(EdgeStore(cfg.path, index_settings(cfg)), "edge")
    if cfg.backend == "qdrant":
        from services.storage.qdrant import QdrantStore

        if not cfg.url:
            raise ValueError(
                "store.url is required for backend 'qdrant' (http(s)://host:6333, :memory:, path:DIR)"
            )
        return MeteredStore(QdrantStore.from_config(cfg), "qdrant")
    raise ValueError(f"unknown store backend {cfg.backend!r}; valid: {list(BACKENDS)}")
