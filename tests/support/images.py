"""Encoded test images of every awkward kind."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    """Encode a PIL image to bytes."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def solid(color=(200, 30, 30), size=(60, 80), fmt="JPEG") -> bytes:
    """A solid-colour RGB image."""
    return encode(Image.new("RGB", size, color), fmt)


def gradient(size=(60, 80)) -> Image.Image:
    """A left-to-right/top-to-bottom RGB gradient (orientation-sensitive)."""
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1), "RGB")
