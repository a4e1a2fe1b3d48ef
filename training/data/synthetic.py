"""A synthetic catalog: garment silhouettes drawn with PIL in several colours, styles.csv schema.

Every product gets a silhouette of its article type (t-shirt, dress, trousers, shoe, watch, bag,
cap) in its base colour on a light background, with small random jitter in size, position and
shade, and a product name built from its metadata. ``write_synthetic_catalog`` writes a folder in
the Fashion Product Images layout so every loader and tool works on it unchanged.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from domain.catalog import Product, write_styles

WIDTH, HEIGHT = 60, 80

COLOURS: dict[str, tuple[int, int, int]] = {
    "Red": (200, 30, 35),
    "Blue": (35, 70, 200),
    "Green": (40, 150, 60),
    "Black": (25, 25, 25),
    "Yellow": (230, 200, 40),
    "Pink": (235, 120, 170),
}


@dataclass(frozen=True)
class Kind:
    """A synthetic article type with its category columns."""

    article: str
    sub: str
    master: str
    genders: tuple[str, ...]
    noun: str


KINDS: dict[str, Kind] = {
    "tshirt": Kind("Tshirts", "Topwear", "Apparel", ("Men", "Women"), "T-shirt"),
    "dress": Kind("Dresses", "Dress", "Apparel", ("Women",), "Dress"),
    "trousers": Kind("Trousers", "Bottomwear", "Apparel", ("Men", "Women"), "Trousers"),
    "shoe": Kind("Casual Shoes", "Shoes", "Footwear", ("Men", "Women"), "Shoes"),
    "watch": Kind("Watches", "Watches", "Accessories", ("Men", "Women", "Unisex"), "Watch"),
    "bag": Kind("Handbags", "Bags", "Accessories", ("Women",), "Handbag"),
    "cap": Kind("Caps", "Headwear", "Accessories", ("Men", "Unisex"), "Cap"),
}

Shape = Callable[[ImageDraw.ImageDraw, float, float, float, tuple[int, int, int]], None]


def _poly(
    draw: ImageDraw.ImageDraw, points: Sequence[tuple[float, float]], cx: float, cy: float, s: float, fill
):
    draw.polygon([(cx + x * s, cy + y * s) for x, y in points], fill=fill)


def _tshirt(d, cx, cy, s, fill):
    _poly(
        d,
        [
            (-8, -12),
            (-20, -6),
            (-16, 0),
            (-10, -3),
            (-10, 14),
            (10, 14),
            (10, -3),
            (16, 0),
            (20, -6),
            (8, -12),
        ],
        cx,
        cy,
        s,
        fill,
    )


def _dress(d, cx, cy, s, fill):
    _poly(d, [(-5, -20), (5, -20), (7, -8), (18, 22), (-18, 22), (-7, -8)], cx, cy, s, fill)


def _trousers(d, cx, cy, s, fill):
    _poly(d, [(-10, -20), (10, -20), (12, 22), (3, 22), (0, -4), (-3, 22), (-12, 22)], cx, cy, s, fill)


def _shoe(d, cx, cy, s, fill):
    _poly(d, [(-18, 0), (-16, -8), (-6, -8), (2, -2), (18, 2), (18, 8), (-18, 8)], cx, cy, s, fill)


def _watch(d, cx, cy, s, fill):
    d.rectangle([cx - 4 * s, cy - 20 * s, cx + 4 * s, cy + 20 * s], fill=(90, 90, 90))
    d.ellipse([cx - 10 * s, cy - 10 * s, cx + 10 * s, cy + 10 * s], fill=fill)
    d.ellipse([cx - 6 * s, cy - 6 * s, cx + 6 * s, cy + 6 * s], fill=(240, 240, 240))


def _bag(d, cx, cy, s, fill):
    d.arc([cx - 9 * s, cy - 18 * s, cx + 9 * s, cy - 2 * s], 180, 360, fill=fill, width=max(1, int(3 * s)))
    d.rectangle([cx - 15 * s, cy - 8 * s, cx + 15 * s, cy + 14 * s], fill=fill)


def _cap(d, cx, cy, s, fill):
    d.pieslice([cx - 14 * s, cy - 14 * s, cx + 14 * s, cy + 10 * s], 180, 360, fill=fill)
    d.rectangle([cx - 2 * s, cy - 2 * s, cx + 22 * s, cy + 1 * s], fill=fill)


SHAPES: dict[str, Shape] = {
    "tshirt": _tshirt,
    "dress": _dress,
    "trousers": _trousers,
    "shoe": _shoe,
    "watch": _watch,
    "bag": _bag,
    "cap": _cap,
}


def draw_item(kind: str, colour: str, rng: random.Random) -> Image.Image:
    """One 60x80 RGB image of ``kind`` in ``colour`` with random jitter."""
    if kind not in SHAPES:
        raise ValueError(f"unknown synthetic kind {kind!r}; valid: {sorted(SHAPES)}")
    if colour not in COLOURS:
        raise ValueError(f"unknown synthetic colour {colour!r}; valid: {sorted(COLOURS)}")
    grey = rng.randint(225, 255)
    image = Image.new("RGB", (WIDTH, HEIGHT), (grey, grey, grey))
    shade = rng.uniform(0.85, 1.15)
    fill = tuple(max(0, min(255, int(c * shade))) for c in COLOURS[colour])
    cx = WIDTH / 2 + rng.uniform(-4, 4)
    cy = HEIGHT / 2 + rng.uniform(-5, 5)
    SHAPES[kind](ImageDraw.Draw(image), cx, cy, rng.uniform(0.95, 1.3), fill)
    return image


def synthetic_products(
    count: int, seed: int = 0, kinds: Sequence[str] | None = None
) -> list[tuple[Product, str]]:
    """``count`` products (cycling kinds x colours) with their kind, ids starting at 1."""
    kinds = list(kinds or KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown synthetic kinds {unknown}; valid: {sorted(KINDS)}")
    rng = random.Random(seed)
    colours = list(COLOURS)
    out = []
    for i in range(count):
        kind = KINDS[kinds[i % len(kinds)]]
        colour = colours[(i // len(kinds)) % len(colours)]
        gender = rng.choice(kind.genders)
        season = rng.choice(("Summer", "Fall", "Winter", "Spring"))
        usage = rng.choice(("Casual", "Sports", "Formal"))
        brand = rng.choice(("Acme", "Northwind", "Contoso", "Globex"))
        attributes = {
            "gender": gender,
            "masterCategory": kind.master,
            "subCategory": kind.sub,
            "articleType": kind.article,
            "baseColour": colour,
            "season": season,
            "year": str(rng.randint(2010, 2018)),
            "usage": usage,
        }
        product = Product(id=str(i + 1), text=f"{brand} {gender} {colour} {kind.noun}", attributes=attributes)
        out.append((product, kinds[i % len(kinds)]))
    return out


def write_synthetic_catalog(
    folder: str | Path, count: int = 700, seed: int = 0, kinds: Sequence[str] | None = None
) -> Path:
    """Write ``count`` synthetic products in the Fashion Product Images layout and return the folder."""
    root = Path(folder)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed + 1)
    products = []
    for product, kind in synthetic_products(count, seed, kinds):
        draw_item(kind, product.value("baseColour"), rng).save(images / f"{product.id}.jpg", quality=92)
        products.append(product)
    write_styles(products, root / "styles.csv")
    return root
