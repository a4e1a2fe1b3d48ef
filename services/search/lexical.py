"""The lexical member of a search: its query vector, or why it is skipped for this request."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from domain.fusion import FusedHit
from domain.lexical import LEXICAL_MEMBER, LexicalSpec, SparseVector, query_vector, word_coverage
from services.search.errors import SearchValidationError
from services.search.plan import Plan
from services.storage.port import StoredPoint

NO_TEXT = "image-only query: the lexical member needs text"
NO_WORDS = "the query text has no searchable words"


def without_lexical(plan: Plan, reason: str) -> tuple[Plan, dict[str, str]]:
    """The plan without the lexical member, and why; ``single:lexical`` cannot go without it."""
    if plan.method.kind == "single":
        raise SearchValidationError("fusion", f"{plan.method.name} cannot answer: {reason}")
    members = tuple(m for m in plan.members if m != LEXICAL_MEMBER)
    return dataclasses.replace(plan, members=members), {LEXICAL_MEMBER: reason}


def lexical_query(
    plan: Plan, text: str, reason: str = NO_TEXT
) -> tuple[Plan, dict[str, str], dict[str, np.ndarray | SparseVector]]:
    """(plan, skipped members, ``{lexical: query vector}``) for the query text.

    Without text (or words that survive tokenizing) the lexical member is skipped, with why.
    """
    if LEXICAL_MEMBER not in plan.members:
        return plan, {}, {}
    if not text.strip():
        return (*without_lexical(plan, reason), {})
    vector = query_vector(text)
    if not vector.indices:
        return (*without_lexical(plan, NO_WORDS), {})
    return plan, {}, {LEXICAL_MEMBER: vector}


def page_coverage(
    spec: LexicalSpec | None,
    words: frozenset[str],
    page: Sequence[FusedHit],
    points: Mapping[str, StoredPoint],
) -> list[float]:
    """Per page hit, the share of the query's ``words`` its lexical document has (0 without words,
    without a lexical member, or for a hit whose point is gone)."""
    if spec is None or not words:
        return [0.0] * len(page)
    shares = []
    for hit in page:
        point = points.get(hit.id)
        if point is None:
            shares.append(0.0)
            continue
        payload = point.payload
        shares.append(word_coverage(words, spec.document_terms(str(payload.get("text") or ""), payload)))
    return shares


__all__ = ["NO_TEXT", "NO_WORDS", "lexical_query", "page_coverage", "without_lexical"]
