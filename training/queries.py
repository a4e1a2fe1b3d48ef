"""Evaluation query sets: category prompts and shopper queries (text->image), "{colour} {type}"
queries, item images (image->image), In-shop query/gallery."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from domain.catalog import Product
from training.data.prompts import CATEGORY_FIELDS, category_query, spoken
from training.metrics import average_precision_at_k
from training.retrieval import QuerySet, top_k


def category_queries(
    gallery: Sequence[Product], field: str, min_items: int = 10
) -> tuple[QuerySet, list[str]]:
    """One "a photo of {category}" query per category with >= ``min_items`` gallery items; returns (set, texts)."""
    if field not in CATEGORY_FIELDS:
        raise ValueError(f"unknown category field {field!r}; valid: {list(CATEGORY_FIELDS)}")
    values = np.array([p.value(field) for p in gallery])
    counts = Counter(values.tolist())
    keys = sorted(c for c, n in counts.items() if n >= min_items)
    relevant = [values == c for c in keys]
    return QuerySet(f"text->image {field}", keys, relevant), [category_query(c) for c in keys]


SHOPPER_SET = "text->image shopper queries"
# Free-text queries as shoppers type them, each with the article types that answer it. They test
# what category prompts cannot: words the captions never say ("polo", "running", "office").
SHOPPER_QUERIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("white polo t-shirts", ("Tshirts",)),
    ("t-shirt", ("Tshirts",)),
    ("sports t-shirt for men", ("Tshirts",)),
    ("formal shirt for office", ("Shirts",)),
    ("red floral summer dress", ("Dresses",)),
    ("blue denim jeans", ("Jeans",)),
    ("women's kurta", ("Kurtas", "Kurtis")),
    ("sarees", ("Sarees",)),
    ("watches for men", ("Watches",)),
    ("black leather handbag", ("Handbags",)),
    ("backpack", ("Backpacks", "Rucksacks")),
    ("wallet", ("Wallets",)),
    ("leather belt", ("Belts",)),
    ("sunglasses", ("Sunglasses",)),
    ("gold earrings", ("Earrings",)),
    ("perfume", ("Perfume and Body Mist", "Deodorant")),
    ("running shoes", ("Sports Shoes",)),
    ("flip flops", ("Flip Flops",)),
    ("heels", ("Heels",)),
    ("socks", ("Socks",)),
)


def shopper_queries(
    gallery: Sequence[Product],
    min_items: int = 10,
    queries: Sequence[tuple[str, tuple[str, ...]]] = SHOPPER_QUERIES,
) -> tuple[QuerySet, list[str]]:
    """The free-text shopper queries whose answers have >= ``min_items`` gallery items (relevant = articleType)."""
    values = np.array([p.value("articleType") for p in gallery])
    kept = [(text, types) for text, types in queries if np.isin(values, types).sum() >= min_items]
    relevant = [np.isin(values, types) for _, types in kept]
    return QuerySet(SHOPPER_SET, [t for t, _ in kept], relevant), [t for t, _ in kept]


COLOUR_TYPE_SET = "text->image colour+type"
# Catalog colours as shoppers write them (the rest are written lower-case as they are).
SPOKEN_COLOURS = {"Multi": "multicolour", "Grey Melange": "grey melange", "Off White": "off-white"}


def colour_type_query(colour: str, article_type: str) -> str:
    """A "{colour} {type}" query in shoppers' words: ("Red", "Dresses") -> "red dresses"."""
    return f"{SPOKEN_COLOURS.get(colour, colour.lower())} {spoken(article_type).lower()}"


def colour_type_queries(gallery: Sequence[Product], min_items: int = 5) -> tuple[QuerySet, list[str]]:
    """One "{colour} {type}" query per (baseColour, articleType) pair with >= ``min_items`` gallery
    items; relevant = both match. Returns (set, texts)."""
    pairs = [(p.value("baseColour"), p.value("articleType")) for p in gallery]
    counts = Counter(pair for pair in pairs if all(pair))
    keys = sorted(pair for pair, n in counts.items() if n >= min_items)
    colours = np.array([c for c, _ in pairs])
    types = np.array([t for _, t in pairs])
    relevant = [(colours == c) & (types == t) for c, t in keys]
    texts = [colour_type_query(c, t) for c, t in keys]
    return QuerySet(COLOUR_TYPE_SET, texts, relevant), texts


def image_queries(
    gallery: Sequence[Product], max_queries: int = 1000, seed: int = 0, field: str = "articleType"
):
    """Up to ``max_queries`` gallery items as image queries (relevant = same ``field``, self excluded).

    Returns (query set, query rows in the gallery).
    """
    values = np.array([p.value(field) for p in gallery])
    counts = Counter(values.tolist())
    eligible = np.array([i for i, v in enumerate(values) if counts[v] >= 2])
    rng = np.random.default_rng(seed)
    rows = (
        np.sort(rng.choice(eligible, size=min(max_queries, len(eligible)), replace=False))
        if len(eligible)
        else eligible
    )
    keys = [gallery[i].id for i in rows]
    return QuerySet(f"image->image {field}", keys, [values == values[i] for i in rows]), rows


def instance_queries(queries: Sequence[Product], gallery: Sequence[Product]) -> QuerySet:
    """In-shop style: relevant = gallery items with the query's item id."""
    items = np.array([p.item_id for p in gallery])
    keys = [p.id for p in queries]
    return QuerySet("in-shop query->gallery", keys, [items == p.item_id for p in queries])


def quick_text_map(
    text_vectors: np.ndarray, gallery_vectors: np.ndarray, query_set: QuerySet, k: int = 10
) -> float:
    """Macro AP@k of a single member's text queries, straight from its top-k (used every epoch)."""
    if not query_set.keys:
        return 0.0
    indices, _ = top_k(text_vectors, gallery_vectors, k)
    values = [
        average_precision_at_k(query_set.relevant[q][indices[q]], int(query_set.relevant[q].sum()), k)
        for q in range(len(query_set.keys))
    ]
    return float(np.mean(values))


BRAND_SET = "text->image brand queries"
NOT_BRANDS = frozenset({"men", "women", "boys", "girls", "unisex", "kids", "the", "and"})


def brand_of(product: Product) -> str:
    """The brand as product names spell it: the name's first word (empty when it is no word)."""
    words = product.text.split()
    first = words[0] if words else ""
    return first if len(first) >= 2 and first.isalpha() and first.lower() not in NOT_BRANDS else ""


def brand_queries(
    gallery: Sequence[Product], min_items: int = 5, max_queries: int = 300
) -> tuple[QuerySet, list[str]]:
    """ "{brand} {articleType}" for each pair with >= ``min_items`` gallery items (relevant = both).

    The ``max_queries`` pairs with the most items are kept (ties by name).
    """
    pairs = Counter((brand_of(p), p.value("articleType")) for p in gallery)
    kept = sorted(
        ((b, t) for (b, t), n in pairs.items() if b and n >= min_items), key=lambda bt: (-pairs[bt], bt)
    )[:max_queries]
    brands = np.array([brand_of(p) for p in gallery])
    types = np.array([p.value("articleType") for p in gallery])
    texts = [f"{b} {t}" for b, t in kept]
    relevant = [(brands == b) & (types == t) for b, t in kept]
    return QuerySet(BRAND_SET, texts, relevant), texts


OUT_OF_CATALOG_SET = "text->image out-of-catalog queries"
# Things a fashion shop does not sell. Validation uses the even positions, test the odd ones, so
# the no-good-match threshold is never chosen on the queries it is measured on.
OUT_OF_CATALOG: tuple[str, ...] = (
    "laptop charger",
    "garden hose",
    "usb cable",
    "coffee maker",
    "car tyre",
    "dog food",
    "printer ink",
    "lawn mower",
    "electric drill",
    "microwave oven",
    "office chair",
    "air conditioner",
    "toilet paper",
    "frying pan",
    "vacuum cleaner",
    "bicycle pump",
    "paint roller",
    "washing machine",
    "hdmi cable",
    "light bulb",
    "wifi router",
    "garden shovel",
    "fish tank",
    "baby stroller",
    "cat litter",
    "engine oil",
    "dishwasher tablets",
    "rice cooker",
    "water heater",
    "ceiling fan",
    "lawn fertilizer",
    "guitar strings",
    "chess board",
    "cement bags",
    "bathroom tiles",
    "solar panel",
    "car battery",
    "graphics card",
    "wooden dining table",
    "kitchen sink",
)


def out_of_catalog_queries(side: str, gallery_size: int) -> tuple[QuerySet, list[str]]:
    """The out-of-catalog queries of one side (``val``: even positions, else odd); nothing is relevant."""
    texts = list(OUT_OF_CATALOG[0::2] if side == "val" else OUT_OF_CATALOG[1::2])
    relevant = [np.zeros(gallery_size, dtype=bool) for _ in texts]
    return QuerySet(OUT_OF_CATALOG_SET, texts, relevant), texts
