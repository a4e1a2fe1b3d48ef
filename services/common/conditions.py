"""Filter conditions from their wire form (``vitrine.v1.Condition``), shared by every servicer."""

from __future__ import annotations

from collections.abc import Iterable

from services.storage.filters import WireCondition
from vitrine.v1 import common_pb2

BOUNDS = ("gte", "gt", "lte", "lt")


def wire_conditions(conditions: Iterable[common_pb2.Condition]) -> list[WireCondition]:
    """Core conditions from their wire form (an unset bound stays None)."""
    return [
        WireCondition(
            field=c.field,
            any_of=list(c.any_of),
            none_of=list(c.none_of),
            **{b: getattr(c, b) if c.HasField(b) else None for b in BOUNDS},
        )
        for c in conditions
    ]


__all__ = ["wire_conditions"]
