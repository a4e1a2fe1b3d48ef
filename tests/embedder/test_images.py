"""Decoding untrusted image bytes: awkward formats embed correctly, bad bytes fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from services.embedder.errors import InvalidInput
from services.embedder.images import decode_image
from tests.support.images import encode, gradient, solid

LIMITS = dict(max_bytes=5_000_000, max_pixels=40_000_000)


def decode(data: bytes, **overrides) -> Image.Image:
    return decode_image(data, "images[0]", **{**LIMITS, **overrides})


def test_cmyk_becomes_rgb_with_same_colour():
    cmyk = Image.new("CMYK", (60, 80), (0, 255, 255, 0))  # pure red in CMYK
    img = decode(encode(cmyk, "JPEG"))
    assert img.mode == "RGB"
    r, g, b = np.asarray(img).reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60


def test_palette_with_transparency_is_composited_on_white():
    pal = Image.new("P", (20, 20), 0)
    pal.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    pal.info["transparency"] = 0
    img = decode(encode(pal, "PNG"))
    assert img.mode == "RGB"
    assert np.asarray(img)[0, 0].tolist() == [255, 255, 255]


def test_alpha_channel_is_composited_on_white():
    rgba = Image.new("RGBA", (10, 10), (0, 0, 255, 0))
    assert np.asarray(decode(encode(rgba)))[5, 5].tolist() == [255, 255, 255]


def test_16_bit_grayscale_keeps_its_brightness():
    arr = np.full((30, 30), 40000, dtype=np.uint16)
    src = Image.fromarray(arr)
    assert src.mode.startswith("I;16")
    img = decode(encode(src))
    value = np.asarray(img)[0, 0]
    assert img.mode == "RGB" and 150 <= value[0] <= 160  # 40000/65535*255 ~ 155.6


def test_exif_rotation_is_applied():
    upright = gradient((60, 80))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera writes (80 wide, 60 high)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: viewer rotates 90 degrees clockwise to display
    img = decode(encode(stored, "JPEG", exif=exif.tobytes(), quality=95))
    assert img.size == (60, 80)
    diff = np.abs(np.asarray(img, dtype=int) - np.asarray(upright, dtype=int)).mean()
    assert diff < 10


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    r, g, _ = np.asarray(decode(data))[8, 8]
    assert r > 200 and g < 50


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"definitely not an image", "not a decodable image"),
        (solid()[:200], "could not be decoded"),
    ],
)
def test_bad_bytes_name_the_item(data: bytes, reason: str):
    with pytest.raises(InvalidInput) as err:
        decode(data)
    assert err.value.field == "images[0]"
    assert reason in str(err.value)


def test_pixel_limit_refuses_decompression_bombs():
    bomb = encode(Image.new("L", (8000, 8000)), "PNG")  # 64 Mpx of zeros, ~60 KB on disk
    assert len(bomb) < 200_000
    with pytest.raises(InvalidInput, match="over the limit"):
        decode(bomb)


def test_byte_limit():
    with pytest.raises(InvalidInput, match="bytes, over the limit"):
        decode(solid(), max_bytes=10)
