"""Streamed image bytes kept on disk so a reindex can re-embed products that came without a path.

One file per product: ``<dir>/<uuid5(product id)>.img`` (the point id, so names are safe and
fixed-length), written atomically. Products ingested by ``image_uri`` need no blob: the uri is
kept in the payload and read again.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from services.common.config import IngestConfig, StoreConfig
from services.storage.port import point_id

BLOBS_DIR = "blobs"


def blob_dir_for(ingest: IngestConfig, store: StoreConfig) -> Path | None:
    """Where blobs go: ``auto`` keeps them beside an Edge store, ``off`` (or empty) disables them."""
    setting = ingest.blob_dir.strip()
    if setting in ("", "off"):
        return None
    if setting == "auto":
        return Path(store.path) / BLOBS_DIR if store.backend == "edge" else None
    return Path(setting)


class BlobStore:
    """Image bytes by product id in one folder."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, product_id: str) -> Path:
        """File that holds (or would hold) the product's image."""
        return self.directory / f"{point_id(product_id)}.img"

    def put(self, product_id: str, data: bytes) -> None:
        """Write atomically (temp file + rename), replacing an older image."""
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".blob-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, self.path(product_id))

    def get(self, product_id: str) -> bytes | None:
        """The stored image, or None."""
        try:
            return self.path(product_id).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, product_ids: Iterable[str]) -> int:
        """Remove images; returns how many existed."""
        removed = 0
        for product_id in product_ids:
            try:
                self.path(product_id).unlink()
                removed += 1
            except FileNotFoundError:
                continue
        return removed
