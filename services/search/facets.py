"""Facet requests: which fields may be counted, the store's facet per field, and counting candidates."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from domain.schema import FACET_TYPES, CatalogSchema
from services.search.errors import SearchValidationError
from services.search.hits import as_text
from services.search.model import FacetsQuery
from services.storage.port import FieldNotIndexed, Filters, VectorStore, top_facets

DEFAULT_FACET_VALUES = 10
MAX_FACET_VALUES = 100
MAX_FACET_FIELDS = 16

FacetCounts = dict[str, list[tuple[str, int]]]


def check_facets(query: FacetsQuery, schema: CatalogSchema) -> tuple[list[str], int]:
    """The fields to count (declared keyword, integer or bool fields) and values per field."""
    if not query.fields:
        raise SearchValidationError(
            "fields", f"name at least one field; facetable: {schema.fields_of(*FACET_TYPES)}"
        )
    if len(query.fields) > MAX_FACET_FIELDS:
        raise SearchValidationError("fields", f"{len(query.fields)} given, at most {MAX_FACET_FIELDS}")
    for i, name in enumerate(query.fields):
        kind = schema.type_of(name)
        if kind not in FACET_TYPES:
            what = f"a {kind} field" if kind else "not declared in the catalog schema"
            raise SearchValidationError(
                f"fields[{i}]", f"{name!r} is {what}; facets count keyword, integer or bool fields"
            )
    if query.limit < 0 or query.limit > MAX_FACET_VALUES:
        raise SearchValidationError(
            "limit", f"must be within 0..{MAX_FACET_VALUES} (0 = {DEFAULT_FACET_VALUES})"
        )
    return list(dict.fromkeys(query.fields)), query.limit or DEFAULT_FACET_VALUES


def not_indexed(query: FacetsQuery, exc: FieldNotIndexed) -> SearchValidationError:
    """The refusal of a facet on a field the collection has no payload index for (names the field)."""
    i = query.fields.index(exc.field_name) if exc.field_name in query.fields else 0
    return SearchValidationError(
        f"fields[{i}]",
        f"{exc.field_name!r} has no index in collection {exc.collection!r}; declare it in the catalog "
        "schema as a keyword, integer or bool field and reindex (or count it with a query)",
    )


def store_facets(
    store: VectorStore, collection: str, fields: Sequence[str], limit: int, filters: Filters | None
) -> FacetCounts:
    """The store's exact facet of every field over the items matching ``filters``.

    A field without a payload index raises :class:`FieldNotIndexed` (see :func:`not_indexed`).
    """
    return {
        name: [
            (as_text(f.value) or "", f.count) for f in store.facet(collection, name, limit, filters or None)
        ]
        for name in fields
    }


def count_facets(payloads: Sequence[Mapping[str, Any]], fields: Sequence[str], limit: int) -> FacetCounts:
    """Value counts of ``fields`` over the given payloads, ordered like the store's facet."""
    out: FacetCounts = {}
    for name in fields:
        counts = Counter(as_text(p[name]) for p in payloads if p.get(name) is not None)
        counts.pop(None, None)
        out[name] = [(str(v.value), v.count) for v in top_facets(counts.items(), limit)]
    return out


__all__ = [
    "DEFAULT_FACET_VALUES",
    "MAX_FACET_VALUES",
    "check_facets",
    "count_facets",
    "not_indexed",
    "store_facets",
]
