"""Search requests as clients build them (the CLI and the web gateway): filters and the shared options."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vitrine.v1 import common_pb2


def parse_filters(items: Iterable[str]) -> dict[str, str]:
    """``["gender=Women", "articleType=Tshirts|Shirts"]`` -> ``{field: value}``; ValueError when malformed."""
    filters: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"filter {item!r}: expected FIELD=VALUE (alternatives separated by |)")
        filters[key.strip()] = value.strip()
    return filters


def request_options(
    *,
    top_k: int,
    offset: int = 0,
    filters: Mapping[str, str] | None = None,
    fusion: str = "",
    members: Sequence[str] = (),
    explain: bool = False,
    min_score: float = 0.0,
    conditions: Sequence[common_pb2.Condition] = (),
) -> dict[str, Any]:
    """The fields SearchRequest and MoreLikeThisRequest share, as keyword arguments for either."""
    return {
        "top_k": top_k,
        "offset": offset,
        "filters": dict(filters or {}),
        "fusion": fusion,
        "members": list(members),
        "explain": explain,
        "min_score": min_score,
        "conditions": list(conditions),
    }


__all__ = ["parse_filters", "request_options"]
