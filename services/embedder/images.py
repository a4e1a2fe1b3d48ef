"""Decode untrusted image bytes into RGB PIL images, safely and correctly.

Handles EXIF orientation, CMYK, palette/alpha (composited on white), 16-bit and 32-bit
grayscale, and animated images (first frame). Refuses empty, truncated or non-image bytes and
images over the pixel limit (decompression bombs) with an InvalidInput naming the item.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from services.embedder.errors import InvalidInput

_HIGH_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in _HIGH_BIT_MODES:
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if img.mode == "F" and arr.max() <= 1.0:
            top = 1.0
        img = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def decode_image(data: bytes, field: str, max_bytes: int, max_pixels: int) -> Image.Image:
    """Decode one encoded image to an upright RGB image, or raise InvalidInput naming ``field``."""
    if not data:
        raise InvalidInput(field, "empty image bytes")
    if len(data) > max_bytes:
        raise InvalidInput(field, f"image is {len(data)} bytes, over the limit of {max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise InvalidInput(field, f"image is {width}x{height} pixels, over the limit of {max_pixels}")
            if getattr(img, "is_animated", False):
                img.seek(0)
            img.load()
    except InvalidInput:
        raise
    except UnidentifiedImageError:
        raise InvalidInput(field, "not a decodable image (unknown or corrupt format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput(field, f"image exceeds the pixel limit of {max_pixels}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(field, f"image could not be decoded ({exc})") from None
    if width == 0 or height == 0:
        raise InvalidInput(field, "image has zero width or height")
    img = ImageOps.exif_transpose(img) or img
    return _to_rgb(img)
