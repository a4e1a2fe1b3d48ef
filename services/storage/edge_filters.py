"""Neutral filters and payload selections in qdrant-edge-py's terms (used by the Edge adapter)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import qdrant_edge as qe

from services.storage.checks import unique
from services.storage.filters import Atom, filter_clauses
from services.storage.port import Filters, point_id


def _edge_atom(key: str, atom: Atom) -> Any:
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
