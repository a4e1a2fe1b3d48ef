"""Neutral filters, payload selections, vectors, index types and errors in qdrant-edge-py's terms
(used by the Edge adapter)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import qdrant_edge as qe

from domain.lexical import SparseVector
from domain.schema import FieldIndex
from services.storage.checks import as_vector, sparse_parts, unique
from services.storage.filters import Atom, filter_clauses
from services.storage.port import Filters, StoreError, Vector, index_flags, point_id

INDEX_SCHEMAS = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "datetime": qe.PayloadSchemaType.Datetime,
    "text": qe.PayloadSchemaType.Text,
}


def edge_index_schema(spec: FieldIndex) -> Any:
    """Edge's index params for a payload index (see :func:`index_flags`)."""
    flags = index_flags(spec)
    if spec.kind == "keyword":
        return qe.KeywordIndexParams(is_tenant=flags.tenant, enable_hnsw=flags.links)
    if spec.kind == "integer":
        return qe.IntegerIndexParams(lookup=True, range=True, is_principal=flags.principal, enable_hnsw=False)
    if spec.kind == "float":
        return qe.FloatIndexParams(is_principal=flags.principal, enable_hnsw=False)
    if spec.kind == "datetime":
        return qe.DatetimeIndexParams(is_principal=flags.principal, enable_hnsw=False)
    return INDEX_SCHEMAS[spec.kind]


def edge_vector(values: Vector, where: str) -> list[float] | qe.SparseVector:
    """A dense member's values as a float list, a sparse member's as Edge's SparseVector."""
    if isinstance(values, SparseVector):
        return qe.SparseVector(*sparse_parts(values, where))
    return as_vector(values)


@contextlib.contextmanager
def edge_errors(what: str) -> Iterator[None]:
    """Edge raises bare ``Exception`` for runtime failures; turn those into :class:`StoreError`."""
    try:
        yield
    except Exception as exc:
        if type(exc) is not Exception:
            raise
        raise StoreError(f"edge {what}: {exc}") from exc


def _edge_atom(key: str, atom: Atom) -> Any:
    if atom.kind == "any" and len(atom.values) == 1:  # an exact match plans faster than any-of-one
        return qe.FieldCondition(key, match=qe.MatchValue(atom.values[0]))
    if atom.kind == "any":
        return qe.FieldCondition(key, match=qe.MatchAny(list(atom.values)))
    if atom.kind == "text":
        return qe.FieldCondition(key, match=qe.MatchText(str(atom.values[0])))
    kind = qe.RangeDateTime if atom.kind == "datetime" else qe.RangeFloat
    return qe.FieldCondition(key, range=kind(gte=atom.gte, gt=atom.gt, lte=atom.lte, lt=atom.lt))


def edge_filter(filters: Filters | None, ids: Sequence[str] = ()) -> qe.Filter | None:
    """Edge filter: every field test must hold; ``ids`` restricts to those products."""
    must, must_not = filter_clauses(filters, _edge_atom, lambda options: qe.Filter(should=options))
    if ids:
        must.insert(0, qe.HasIdCondition({point_id(i) for i in ids}))
    if not must and not must_not:
        return None
    return qe.Filter(must=must or None, must_not=must_not or None)


def payload_selector(payload_fields: Sequence[str] | None) -> Any:
    """Edge's ``with_payload``: all (None), none (``()``), or the named keys plus ``id``."""
    if payload_fields is None:
        return True
    if not payload_fields:
        return False
    return qe.PayloadSelector.Include(unique(["id", *payload_fields]))
