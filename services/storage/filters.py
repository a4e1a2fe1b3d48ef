"""Filter syntax shared by ingest (Delete/Count) and search, and the neutral form adapters translate.

On the wire a filter is ``map<string, string>``; ``|`` separates alternatives::

    {"articleType": "Tshirts|Shirts", "gender": "Women"}
    -> {"articleType": ("Tshirts", "Shirts"), "gender": ("Women",)}

A point matches when, for every field, its payload value equals one of the alternatives. Keys may
name nested payload fields with dots (``cluster.m1`` reads ``{"cluster": {"m1": 3}}``). Stored
attributes are strings while cluster ids are integers, so an alternative that spells an integer
in canonical form (``"3"``, not ``"03"``) matches both the string and the integer.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from services.storage.port import Filters

ALTERNATIVE_SEPARATOR = "|"
FIELD_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")


@dataclass(frozen=True)
class FieldMatch:
    """One field's alternatives split by type, ready for a backend ``MatchAny``."""

    key: str
    keywords: tuple[str, ...]
    integers: tuple[int, ...]


def _is_allowed(key: str, allowed: Collection[str]) -> bool:
    """Exact names, or ``prefix.*`` entries that allow every sub-field of ``prefix``."""
    if key in allowed:
        return True
    return any(entry.endswith(".*") and key.startswith(entry[:-1]) for entry in allowed)


def parse_filters(
    raw: Mapping[str, str], allowed: Collection[str] | None = None, max_fields: int | None = None
) -> dict[str, tuple[str, ...]]:
    """Parse wire filters into ``{field: alternatives}``; raise ValueError naming the bad field.

    ``allowed`` (exact names or ``prefix.*``) limits which fields may be used; ``max_fields``
    caps how many fields one filter may name.
    """
    if max_fields is not None and len(raw) > max_fields:
        raise ValueError(f"filters: {len(raw)} fields given, at most {max_fields} allowed")
    parsed: dict[str, tuple[str, ...]] = {}
    for key, value in raw.items():
        if not key or not key.strip():
            raise ValueError("filters: empty field name")
        if not FIELD_PATTERN.match(key):
            raise ValueError(f"filters[{key!r}]: field names are [A-Za-z0-9_-] parts joined by '.'")
        if allowed is not None and not _is_allowed(key, allowed):
            raise ValueError(f"filters[{key!r}]: unknown field; valid: {sorted(allowed)}")
        alternatives = tuple(part.strip() for part in value.split(ALTERNATIVE_SEPARATOR))
        if not value.strip() or any(not part for part in alternatives):
            raise ValueError(f"filters[{key!r}]: empty value; use 'a|b' for alternatives")
        parsed[key] = alternatives
    return parsed


def _canonical_int(value: str) -> int | None:
    """The integer a string spells in canonical form, else None."""
    if re.fullmatch(r"-?[0-9]+", value) and str(int(value)) == value:
        return int(value)
    return None


def field_matches(filters: Filters | None) -> list[FieldMatch]:
    """Neutral per-field matches for adapters; a field with no values raises ValueError."""
    matches: list[FieldMatch] = []
    for key, values in (filters or {}).items():
        if isinstance(values, (str, bytes, int)):
            raise ValueError(f"filters[{key!r}]: expected a sequence of values, got {values!r}")
        if not values:
            raise ValueError(f"filters[{key!r}]: no values given")
        keywords: list[str] = []
        integers: list[int] = []
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise ValueError(f"filters[{key!r}]: values must be str or int, got {value!r}")
            if isinstance(value, int):
                integers.append(value)
                keywords.append(str(value))
                continue
            keywords.append(value)
            number = _canonical_int(value)
            if number is not None:
                integers.append(number)
        matches.append(FieldMatch(key, tuple(dict.fromkeys(keywords)), tuple(dict.fromkeys(integers))))
    return matches


__all__ = [
    "FieldMatch",
    "field_matches",
    "parse_filters",
]
