"""From stored payloads to ranked hits and display attributes.

Ingest stores the cluster of a product under every member as ``payload["cluster"] = {member: id}``
(a flat ``"cluster.<member>"`` key is read too). That map is internal: it feeds re-ranking and the
explanation, and is left out of the attributes a hit shows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from services.search.fusion import Contribution, FusedHit, RankedHit
from services.search.model import ResultHit
from services.storage.filters import CLUSTER_FIELD
from services.storage.port import ScoredPoint, StoredPoint

NO_CLUSTER = -1


def _cluster_id(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def cluster_under(payload: Mapping[str, Any], member: str) -> int:
    """The product's cluster under one member, or -1 (the hot path: one lookup per hit)."""
    nested = payload.get(CLUSTER_FIELD)
    value = nested.get(member) if isinstance(nested, Mapping) else payload.get(f"{CLUSTER_FIELD}.{member}")
    found = _cluster_id(value)
    return NO_CLUSTER if found is None else found


def clusters_of(payload: Mapping[str, Any]) -> dict[str, int]:
    """``{member: cluster id}`` from a payload (unknown or malformed entries are left out)."""
    found: dict[str, int] = {}
    nested = payload.get(CLUSTER_FIELD)
    if isinstance(nested, Mapping):
        items = list(nested.items())
    else:
        prefix = f"{CLUSTER_FIELD}."
        items = [(key[len(prefix) :], value) for key, value in payload.items() if key.startswith(prefix)]
    for member, value in items:
        cluster = _cluster_id(value)
        if cluster is not None:
            found[str(member)] = cluster
    return found


def is_internal(key: str) -> bool:
    """Payload keys that are not product attributes (the cluster map)."""
    return key == CLUSTER_FIELD or key.startswith(f"{CLUSTER_FIELD}.")


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
        return [RankedHit(p.key, p.score) for p in points]
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


def result_hit(hit: FusedHit, point: StoredPoint, explain: bool) -> ResultHit:
    """A fused hit as the product ``point``, with its member evidence when ``explain``."""
    return ResultHit(
        id=point.id,
        score=hit.score,
        attributes=attributes_of(point.payload),
        matched_members=hit.matched_members,
        members=with_page_clusters(hit, point.payload) if explain else (),
    )


__all__ = [
    "NO_CLUSTER",
    "as_text",
    "attributes_of",
    "clusters_of",
    "is_internal",
    "ranked_hits",
    "result_hit",
    "with_page_clusters",
]
