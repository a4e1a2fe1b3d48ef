"""Captions from product metadata, in the spirit of StyleFinder: templates filled per item.

Templates whose fields are empty for an item are left out for that item; the product name is one
more caption. Training samples one caption per item and step.
"""

from __future__ import annotations

import string

from training.data.catalog import Product

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


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def captions(product: Product, templates: tuple[str, ...] = TEMPLATES, with_name: bool = True) -> list[str]:
    """All captions of one product (deduplicated, in template order, then its name)."""
    out: list[str] = []
    for template in templates:
        values = {f: getattr(product, f) for f in _fields(template)}
        if all(values.values()):
            text = " ".join(template.format(**values).split())
            if text not in out:
                out.append(text)
    name = " ".join(product.productDisplayName.split())
    if with_name and name and name not in out:
        out.append(name)
    return out


def category_query(category: str) -> str:
    """The text->image evaluation query for a category value."""
    return QUERY_TEMPLATE.format(category=category)
