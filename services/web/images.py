"""Product images for the page: blob bytes for products pushed as bytes, else ``image_uri`` files.

A product id reaches the gateway in a URL, so ids with path characters are refused before
anything is looked up, and an ``image_uri`` is served only when it resolves (symlinks followed)
to a file under the configured image root. Responses carry an ``ETag`` (a digest of the blob, or
the file's size and mtime) and ``Cache-Control``; a matching ``If-None-Match`` gets 304.
"""

from __future__ import annotations

import hashlib
import mimetypes
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.storage.blobs import BlobStore

# Leading bytes of the formats the embedder decodes -> media type.
SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)
PATH_CHARACTERS = ("/", "\\", "..")


class ImageNotFound(LookupError):
    """No image can be served for the request; the message says why (sent with a 404)."""


@dataclass(frozen=True)
class ImageSource:
    """Where a product's image is: bytes from the blob store, or a file under the image root."""

    etag: str
    media_type: str
    data: bytes | None = None
    path: Path | None = None


def check_item_id(item_id: str) -> None:
    """Refuse ids that could be read as a path (``/``, ``\\``, ``..``) or hold control characters."""
    if not item_id.strip():
        raise ImageNotFound("item id: empty")
    if any(part in item_id for part in PATH_CHARACTERS):
        raise ImageNotFound(f"item id {item_id!r}: contains path characters ('/', '\\\\' or '..')")
    if any(unicodedata.category(c) == "Cc" for c in item_id):
        raise ImageNotFound(f"item id {item_id!r}: contains control characters")


def sniff_media_type(data: bytes) -> str:
    """The image media type from its first bytes (``application/octet-stream`` when unknown)."""
    for signature, media_type in SIGNATURES:
        if data.startswith(signature):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def file_under_root(uri: str, root: Path) -> Path | None:
    """``uri`` (a path, ``file://`` uri, or a path relative to ``root``) as a file under ``root``, else None."""
    if not uri or "://" in uri.removeprefix("file://"):
        return None
    path = Path(uri.removeprefix("file://"))
    path = (path if path.is_absolute() else root / path).resolve()  # relative: under the root
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def image_source(
    item_id: str, attributes: Mapping[str, str], blobs: BlobStore | None, root: Path
) -> ImageSource:
    """The product's stored blob, else its ``image_uri`` file under ``root``; ImageNotFound else."""
    data = blobs.get(item_id) if blobs is not None else None
    if data:
        digest = hashlib.sha256(data).hexdigest()[:32]
        return ImageSource(etag=f'"b-{digest}"', media_type=sniff_media_type(data), data=data)
    uri = attributes.get("image_uri", "")
    path = file_under_root(uri, root)
    if path is None:
        why = "its image_uri is not a file under the image root" if uri else "no image bytes were kept"
        raise ImageNotFound(f"item {item_id!r} has no image to serve: {why}")
    stat = path.stat()
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return ImageSource(etag=f'"f-{stat.st_mtime_ns:x}-{stat.st_size:x}"', media_type=media_type, path=path)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak or strong), or is ``*``."""
    if not if_none_match:
        return False
    candidates = {c.strip().removeprefix("W/") for c in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


__all__ = [
    "ImageNotFound",
    "ImageSource",
    "check_item_id",
    "etag_matches",
    "file_under_root",
    "image_source",
    "sniff_media_type",
]
