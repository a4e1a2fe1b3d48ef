"""Pick the storage adapter from config, and name collections the one way everybody agrees on."""

from __future__ import annotations

import re

from services.common.config import StoreConfig
from services.storage.metered import MeteredStore
from services.storage.port import VectorStore

BACKENDS = ("edge", "qdrant")
COLLECTION_SEPARATOR = "__"


def open_store(cfg: StoreConfig) -> VectorStore:
    """The adapter for ``cfg.backend``: ``edge`` (shards under ``cfg.path``) or ``qdrant`` (``cfg.url``).

    Either is wrapped in :class:`MeteredStore` (Prometheus latency/error metrics per operation).
    """
    if cfg.backend == "edge":
        from services.storage.edge import EdgeStore

        return MeteredStore(EdgeStore(cfg.path), "edge")
    if cfg.backend == "qdrant":
        from services.storage.qdrant import QdrantStore

        if not cfg.url:
            raise ValueError(
                "store.url is required for backend 'qdrant' (http(s)://host:6333, :memory:, path:DIR)"
            )
        return MeteredStore(QdrantStore.from_config(cfg), "qdrant")
    raise ValueError(f"unknown store backend {cfg.backend!r}; valid: {list(BACKENDS)}")


def _sanitize(part: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", part.strip()).strip("-.")
    return re.sub(r"_{2,}", "_", cleaned)


REBUILD_SEPARATOR = ".r"  # <collection>.r<timestamp>: a same-version rebuild (Ingest.Reindex)


def holds_version(collection: str | None, canonical: str) -> bool:
    """Whether ``collection`` was built for the bundle version whose collection name is ``canonical``."""
    return collection is not None and (
        collection == canonical or collection.startswith(canonical + REBUILD_SEPARATOR)
    )


def collection_name(catalog: str, bundle_name: str, bundle_version: str) -> str:
    """``<catalog>__<bundle>-<version>``, each part reduced to ``[A-Za-z0-9_.-]``.

    Double underscores inside a part are collapsed so ``__`` only ever separates catalog and bundle.
    """
    parts = {"catalog": catalog, "bundle_name": bundle_name, "bundle_version": bundle_version}
    cleaned = {key: _sanitize(value) for key, value in parts.items()}
    for key, value in cleaned.items():
        if not value:
            raise ValueError(f"{key} {parts[key]!r} has no usable characters [A-Za-z0-9_.-]")
    return f"{cleaned['catalog']}{COLLECTION_SEPARATOR}{cleaned['bundle_name']}-{cleaned['bundle_version']}"
