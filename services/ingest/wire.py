"""A product and its wire form (``vitrine.v1.Product``), both ways, over one list of fields."""

from __future__ import annotations

from domain.catalog import Product
from vitrine.v1 import ingest_pb2

SCALAR_FIELDS = ("id", "image", "image_uri", "text")


def to_proto(product: Product) -> ingest_pb2.Product:
    """The wire form of a product."""
    scalars = {name: getattr(product, name) for name in SCALAR_FIELDS}
    return ingest_pb2.Product(**scalars, attributes=dict(product.attributes))


def from_proto(request: ingest_pb2.Product) -> Product:
    """Core product from its wire form."""
    scalars = {name: getattr(request, name) for name in SCALAR_FIELDS}
    return Product(**scalars, attributes=dict(request.attributes))


__all__ = ["from_proto", "to_proto"]
