"""Captions from product metadata, in the spirit of StyleFinder: templates filled per item.

Templates whose fields are empty for an item are left out for that item; the product name is one
more caption. Training samples one caption per item and step.
"""

from __future__ import annotations

import string

from domain.catalog import Product

TEMPLATES = (
    "a photo of {articleType}",
    "a photo of a {baseColour} {articleType}",
    "a photo of a {baseColour} {articleType} for {gender}",
    "{gender} {articleType} in {baseColour}",
    "{usage} {subCategory} for {gender}",
    "a {baseColour} {subCategory} from {masterCategory}",
    "{season} {usage} {articleType}",
)
QUERY_TEMPLATE = "a photo of {category}"
CATEGORY_FIELDS = ("articleType", "subCategory", "masterCategory")
# Catalog values as a shopper writes them: "Tshirts" is one unknown word to a text tower, while the
# query "white polo t-shirts" says "t-shirts" (and lands on "Shirts" when captions say "Tshirts").
SPOKEN_VALUES = {
    "Tshirts": "T-shirts",
    "Lounge Tshirts": "Lounge T-shirts",
    "Ipad": "iPad",
    "Mens Grooming Kit": "Men's Grooming Kit",
    "Topwear": "Top wear",
    "Bottomwear": "Bottom wear",
    "Innerwear": "Inner wear",
}


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def captions(product: Product, templates: tuple[str, ...] = TEMPLATES, with_name: bool = True) -> list[str]:
    """All captions of one product (deduplicated, in template order, then its name)."""
    out: list[str] = []
    for template in templates:
        values = {f: spoken(product.value(f)) for f in _fields(template)}
        if all(values.values()):
            text = " ".join(template.format(**values).split())
            if text not in out:
                out.append(text)
    name = " ".join(product.text.split())
    if with_name and name and name not in out:
        out.append(name)
    return out


def spoken(value: str) -> str:
    """A metadata value as people write it in a query (``Tshirts`` -> ``T-shirts``)."""
    return SPOKEN_VALUES.get(value, value)


def category_query(category: str) -> str:
    """The text->image evaluation query for a category value (spoken form)."""
    return QUERY_TEMPLATE.format(category=spoken(category))
