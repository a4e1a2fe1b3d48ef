"""Neutral filters in qdrant-client's terms (used by the qdrant-client adapter)."""

from __future__ import annotations

from collections.abc import Sequence

from qdrant_client import models

from services.storage.filters import Atom, filter_clauses
from services.storage.port import Filters, point_id


def _qdrant_atom(key: str, atom: Atom) -> models.FieldCondition:
    if atom.kind == "any" and len(atom.values) == 1:  # an exact match plans faster than any-of-one
        return models.FieldCondition(key=key, match=models.MatchValue(value=atom.values[0]))
    if atom.kind == "any":
        return models.FieldCondition(key=key, match=models.MatchAny(any=list(atom.values)))
    if atom.kind == "text":
        return models.FieldCondition(key=key, match=models.MatchText(text=str(atom.values[0])))
    kind = models.DatetimeRange if atom.kind == "datetime" else models.Range
    return models.FieldCondition(key=key, range=kind(gte=atom.gte, gt=atom.gt, lte=atom.lte, lt=atom.lt))


def qdrant_filter(filters: Filters | None, ids: Sequence[str] = ()) -> models.Filter | None:
    """Qdrant filter: every field test must hold; ``ids`` restricts to those products."""
    must, must_not = filter_clauses(filters, _qdrant_atom, lambda options: models.Filter(should=options))
    if ids:
        must.insert(0, models.HasIdCondition(has_id=[point_id(i) for i in ids]))
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)
