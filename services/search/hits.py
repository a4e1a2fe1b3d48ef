"""From stored payloads (layout in :mod:`domain.payload`) to ranked hits and display attributes.

The cluster map is internal: it feeds re-ranking and the explanation, and is left out of the
attributes a hit shows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from domain.bundle import Bundle
from domain.fusion import Contribution, FusedHit, RankedHit
from domain.payload import NO_CLUSTER, cluster_under, clusters_of, is_internal
from services.search.model import ResultHit
from services.storage.port import ScoredPoint, StoredPoint


def as_text(value: Any) -> str | None:
    """A payload value as display text (None for null/NaN: left out)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def attributes_of(payload: Mapping[str, Any]) -> dict[str, str]:
    """Stringified product attributes of a payload, without internal keys."""
    attributes: dict[str, str] = {}
    for key, value in payload.items():
        if is_internal(key):
            continue
        text = as_text(value)
        if text is not None:
            attributes[key] = text
    return attributes


def ranked_hits(points: Sequence[ScoredPoint], member: str, with_clusters: bool = True) -> list[RankedHit]:
    """One member's store hits as fusion input, keyed by store key (the product id is read later).

    With ``with_clusters`` each hit carries its cluster under ``member`` (-1 when unknown); without,
    every cluster is -1 (the query read no payload).
    """
    if not with_clusters:
        new = tuple.__new__  # hundreds per search: NamedTuple's own constructor adds a call each
        return [new(RankedHit, (p.key, p.score, NO_CLUSTER)) for p in points]
    return [RankedHit(p.key, p.score, cluster_under(p.payload, member)) for p in points]


def with_page_clusters(hit: FusedHit, payload: Mapping[str, Any]) -> tuple[Contribution, ...]:
    """The hit's member evidence with clusters the ranking did not read filled in from ``payload``."""
    if all(c.cluster != NO_CLUSTER for c in hit.contributions):
        return hit.contributions
    clusters = clusters_of(payload)
    return tuple(
        c if c.cluster != NO_CLUSTER else c._replace(cluster=clusters.get(c.member, NO_CLUSTER))
        for c in hit.contributions
    )


def result_hit(hit: FusedHit, point: StoredPoint, explain: bool, relevance: float = 0.0) -> ResultHit:
    """A fused hit as the product ``point``, with its member evidence when ``explain``."""
    return ResultHit(
        id=point.id,
        score=hit.score,
        attributes=attributes_of(point.payload),
        matched_members=hit.matched_members,
        members=with_page_clusters(hit, point.payload) if explain else (),
        relevance=relevance,
    )


def joint_vector(point: StoredPoint, members: Sequence[str], bundle: Bundle) -> np.ndarray:
    """Unit member vectors, each scaled by 1/sqrt(M) and concatenated: dot product = mean cosine."""
    parts = []
    scale = 1.0 / math.sqrt(max(1, len(members)))
    for member in members:
        values = point.vectors.get(member)
        if values is None:
            parts.append(np.zeros(bundle.member(member).dim, dtype=np.float64))
            continue
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(v))
        parts.append(v * (scale / norm) if norm > 0 else v)
    return np.concatenate(parts)


def clusters_by_key(lists: Mapping[str, Sequence[ScoredPoint]]) -> dict[str, dict[str, int]]:
    """``{store key: {member: cluster id}}`` from the first payload seen per point of the members' lists."""
    clusters: dict[str, dict[str, int]] = {}
    for points in lists.values():
        for point in points:
            if point.key not in clusters:
                clusters[point.key] = clusters_of(point.payload)
    return clusters


__all__ = [
    "clusters_by_key",
    "joint_vector",
    "as_text",
    "attributes_of",
    "ranked_hits",
    "result_hit",
    "with_page_clusters",
]
