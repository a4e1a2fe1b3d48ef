"""The blob port: a product's original image bytes by product id, beside the vector store.

Ingest writes a blob for every product pushed as bytes (so ``Reindex`` can re-embed it and the web
gateway can show it); products ingested by ``image_uri`` need none. Adapters: :class:`FileBlobStore`
(one folder, local or a shared volume). An object-store adapter (S3-compatible) implements the
same four calls and is picked by ``blobs.backend`` in :func:`open_blob_store`; ingest, reindex and
the gateway only see :class:`BlobStore`.
"""

from __future__ import annotations

import abc
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from services.common.config import BlobsConfig, StoreConfig
from services.storage.port import point_id

log = logging.getLogger("vitrine.blobs")
BLOB_BACKENDS = ("files",)
BLOBS_DIR = "blobs"
BLOB_SUFFIX = ".img"


class BlobStore(abc.ABC):
    """Image bytes by product id."""

    @abc.abstractmethod
    def put(self, product_id: str, data: bytes) -> None:
        """Store (or replace) the product's image; a reader never sees a half-written one."""

    @abc.abstractmethod
    def get(self, product_id: str) -> bytes | None:
        """The stored image, or None."""

    @abc.abstractmethod
    def delete(self, product_ids: Iterable[str]) -> int:
        """Remove images; returns how many existed."""

    @abc.abstractmethod
    def exists(self, product_id: str) -> bool:
        """Whether an image is stored for the product."""


class FileBlobStore(BlobStore):
    """One file per product, ``<dir>/<uuid5(product id)>.img`` (the point id: safe, fixed-length).

    ``create=False`` opens a folder read-only (the gateway and search mount it so); a missing
    folder then just holds nothing yet.
    """

    def __init__(self, directory: str | os.PathLike[str], create: bool = True) -> None:
        self.directory = Path(directory)
        if create:
            self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, product_id: str) -> Path:
        """File that holds (or would hold) the product's image."""
        return self.directory / f"{point_id(product_id)}{BLOB_SUFFIX}"

    def put(self, product_id: str, data: bytes) -> None:
        """Write atomically (temp file + rename), replacing an older image."""
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".blob-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self.path(product_id))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

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

    def exists(self, product_id: str) -> bool:
        """Whether the product's file is there."""
        return self.path(product_id).is_file()

    def __repr__(self) -> str:
        return f"FileBlobStore({str(self.directory)!r})"


def blob_dir_for(blobs: BlobsConfig, store: StoreConfig) -> Path | None:
    """The folder of the ``files`` backend, or None when blobs are off.

    ``auto``: ``<store.path>/blobs`` (beside an Edge store, or a local folder in server mode;
    deploy/ points ``VITRINE_BLOBS_DIR`` at a shared volume instead); for qdrant-client local mode
    on disk (``path:DIR``) ``DIR/blobs``; off for the throwaway ``:memory:`` store.
    """
    setting = blobs.dir.strip()
    if setting in ("", "off"):
        return None
    if setting != "auto":
        return Path(setting)
    if store.backend == "qdrant" and store.url == ":memory:":
        return None
    if store.backend == "qdrant" and store.url.startswith("path:"):
        return Path(store.url.removeprefix("path:")) / BLOBS_DIR
    return Path(store.path) / BLOBS_DIR


def open_blob_store(blobs: BlobsConfig, store: StoreConfig, writable: bool = True) -> BlobStore | None:
    """The configured blob adapter, or None when blobs are off (``writable=False`` for readers)."""
    if blobs.backend not in BLOB_BACKENDS:
        raise ValueError(f"unknown blobs.backend {blobs.backend!r}; valid: {list(BLOB_BACKENDS)}")
    directory = blob_dir_for(blobs, store)
    if directory is None:
        return None
    return FileBlobStore(directory, create=writable)


__all__ = ["BLOB_BACKENDS", "BlobStore", "FileBlobStore", "blob_dir_for", "open_blob_store"]
