"""Store keys of Edge hits as strings, remembered by their UUID's integer.

The Edge binding hands every hit's id over as a fresh ``uuid.UUID``; formatting it as the key
string (``str``) was a third of turning a query's 500 candidate hits into keyed tuples. Catalog
items come back query after query, so the strings are kept by the UUID's integer (an attribute
read and one dict look-up). The map is bounded: when full it starts over.
"""

from __future__ import annotations

from typing import Any

DEFAULT_LIMIT = 200_000  # strings kept (about 30 MB at most)


class PointKeys:
    """``key(point_id)``: the id's string form, remembered for UUIDs (other ids: ``str``)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self._known: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._known)

    def __call__(self, point_id: Any) -> str:
        number = getattr(point_id, "int", None)
        if number is None:  # an integer or string id
            return str(point_id)
        key = self._known.get(number)
        if key is None:
            if len(self._known) >= self.limit:
                self._known.clear()
            key = self._known[number] = str(point_id)
        return key


__all__ = ["DEFAULT_LIMIT", "PointKeys"]
