"""The per-item checks that run before a product (:class:`domain.catalog.Product`) is embedded.

Every check raises :class:`ItemRejected` with a gRPC status code name and a message naming the
field, so the stream can report the item and go on with the next one.
"""

from __future__ import annotations

import io
import re
import unicodedata
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from urllib.parse import urlparse

from PIL import Image

from domain.catalog import Product
from domain.payload import RESERVED_FIELDS
from services.common.config import IngestConfig

ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 4000  # product title/description stored in the payload
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_CHARS = 1000
_ALLOWED_CONTROL = {"\t", "\n", "\r"}
URI_SCHEMES = ("file", "http", "https")


class ItemRejected(Exception):
    """One item cannot be ingested; ``code`` is a gRPC status code name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _check_text(field_name: str, value: str, limit: int) -> None:
    """Bounded length and no control characters (tab and newlines allowed)."""
    if len(value) > limit:
        raise ItemRejected(
            "INVALID_ARGUMENT", f"{field_name}: {len(value)} characters, over the limit of {limit}"
        )
    if any(unicodedata.category(c) == "Cc" and c not in _ALLOWED_CONTROL for c in value):
        raise ItemRejected("INVALID_ARGUMENT", f"{field_name}: contains control characters")


def check_product(product: Product) -> None:
    """Id, text and attributes must be usable as point ids and payload, within their limits."""
    if not product.id or not product.id.strip():
        raise ItemRejected("INVALID_ARGUMENT", "id: required")
    if len(product.id) > MAX_ID_CHARS:
        raise ItemRejected("INVALID_ARGUMENT", f"id: longer than {MAX_ID_CHARS} characters")
    _check_text("id", product.id, MAX_ID_CHARS)
    _check_text("text", product.text, MAX_TEXT_CHARS)
    if len(product.attributes) > MAX_ATTRIBUTES:
        raise ItemRejected(
            "INVALID_ARGUMENT",
            f"attributes: {len(product.attributes)} given, over the limit of {MAX_ATTRIBUTES}",
        )
    for name, value in product.attributes.items():
        _check_text(f"attributes[{name!r}]", value, MAX_ATTRIBUTE_CHARS)
    for name in product.attributes:
        if name in RESERVED_FIELDS:
            raise ItemRejected(
                "INVALID_ARGUMENT", f"attributes[{name!r}]: reserved name; reserved: {list(RESERVED_FIELDS)}"
            )
        if not ATTRIBUTE_NAME.match(name):
            raise ItemRejected(
                "INVALID_ARGUMENT",
                f"attributes[{name!r}]: names are [A-Za-z0-9_-], starting with a letter or _",
            )


def _oversize(size: int, cfg: IngestConfig) -> ItemRejected:
    return ItemRejected(
        "INVALID_ARGUMENT", f"image: {size} bytes exceeds max_image_bytes={cfg.max_image_bytes}"
    )


def resolve_local(uri: str, root: Path) -> Path:
    """The real file a local ``image_uri`` names; it must stay under ``root`` after resolving links."""
    raw = urlparse(uri).path if uri.startswith("file:") else uri
    path = Path(raw)
    path = path if path.is_absolute() else root / path
    try:
        real = path.resolve(strict=True)
    except (FileNotFoundError, RuntimeError) as exc:
        raise ItemRejected("NOT_FOUND", f"image_uri: {uri!r} does not exist") from exc
    if not real.is_relative_to(root):
        raise ItemRejected("PERMISSION_DENIED", f"image_uri: {uri!r} is outside the allowed image root")
    if not real.is_file():
        raise ItemRejected("INVALID_ARGUMENT", f"image_uri: {uri!r} is not a file")
    return real


def _fetch_http(uri: str, cfg: IngestConfig) -> bytes:
    try:
        with urllib.request.urlopen(uri, timeout=cfg.http_timeout_s) as response:  # noqa: S310 - scheme checked
            data = response.read(cfg.max_image_bytes + 1)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise ItemRejected("UNAVAILABLE", f"image_uri: fetching {uri!r} failed: {exc}") from exc
    if len(data) > cfg.max_image_bytes:
        raise _oversize(len(data), cfg)
    return data


def read_uri(uri: str, cfg: IngestConfig, root: Path) -> bytes:
    """Bytes behind an image_uri: a local path under ``root``, or http(s) when ``allow_http``."""
    scheme = urlparse(uri).scheme.lower()
    if scheme in ("http", "https"):
        if not cfg.allow_http:
            raise ItemRejected(
                "PERMISSION_DENIED", "image_uri: http(s) images are disabled (ingest.allow_http)"
            )
        return _fetch_http(uri, cfg)
    if scheme not in ("", "file"):
        raise ItemRejected(
            "INVALID_ARGUMENT", f"image_uri: unsupported scheme {scheme!r}; valid: {list(URI_SCHEMES)}"
        )
    path = resolve_local(uri, root)
    size = path.stat().st_size
    if size > cfg.max_image_bytes:
        raise _oversize(size, cfg)
    return path.read_bytes()


def check_decodable(data: bytes) -> None:
    """Cheap structural check (header and format) before the image travels to the embedder."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.verify()
    except Exception as exc:  # PIL raises many types for bad data
        raise ItemRejected("INVALID_ARGUMENT", f"image: not a decodable image ({exc})") from exc


def load_image(product: Product, cfg: IngestConfig, root: Path) -> bytes:
    """Validated image bytes for a product (its own bytes first, else its image_uri)."""
    check_product(product)
    if product.image:
        if len(product.image) > cfg.max_image_bytes:
            raise _oversize(len(product.image), cfg)
        data = product.image
    elif product.image_uri:
        data = read_uri(product.image_uri, cfg, root)
    else:
        raise ItemRejected("INVALID_ARGUMENT", "image: one of image or image_uri is required")
    if not data:
        raise ItemRejected("INVALID_ARGUMENT", "image: empty")
    check_decodable(data)
    return data
