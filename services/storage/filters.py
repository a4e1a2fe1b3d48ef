"""Filter syntax shared by ingest (Delete/Count) and search, and the neutral form adapters translate.

On the wire a request carries ``map<string, string> filters`` (``|`` separates alternatives) and
``repeated Condition conditions``::

    filters    {"articleType": "Tshirts|Shirts", "gender": "Women"}
    conditions [{field: "price", gte: 10, lte: 50}, {field: "brand", none_of: ["Acme"]}]

A point matches when every filter and every condition holds. Values are typed by the catalog
schema (:mod:`domain.schema`): ranges need an ``integer``, ``float`` or ``datetime`` field
(datetime bounds are epoch seconds, UTC; datetime values in ``any_of``/``none_of`` are RFC 3339).
Undeclared fields match exactly as strings (a value spelling an integer in canonical form, ``"3"``,
also matches the integer 3: that is how ``cluster.<member>`` ids are filtered). ``none_of`` passes
items that lack the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.schema import FASHION_SCHEMA, RANGE_TYPES, CatalogSchema, convert_value, format_datetime
from services.storage.port import Condition, Filters, Scalar

ALTERNATIVE_SEPARATOR = "|"
FIELD_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
BOUNDS = ("gte", "gt", "lte", "lt")


@dataclass(frozen=True)
class WireCondition:
    """A condition as a request gives it (values still text, bounds as numbers)."""

    field: str
    any_of: Sequence[str] = ()
    none_of: Sequence[str] = ()
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None


@dataclass(frozen=True)
class Atom:
    """One backend condition: ``any`` (value in ``values``), ``range`` (numeric bounds),
    ``datetime`` (RFC 3339 bounds) or ``text`` (full-text match of ``values[0]``)."""

    kind: str
    values: tuple[Scalar, ...] = ()
    gte: float | str | None = None
    gt: float | str | None = None
    lte: float | str | None = None
    lt: float | str | None = None


@dataclass(frozen=True)
class FieldTest:
    """What one field must satisfy: one of ``any_of`` (if any), ``bounds`` (if set), none of ``none_of``."""

    key: str
    any_of: tuple[Atom, ...] = ()
    none_of: tuple[Atom, ...] = ()
    bounds: Atom | None = None


# -- wire -> neutral --------------------------------------------------------------------------


def _check_key(key: str, where: str) -> None:
    if not key or not key.strip():
        raise ValueError(f"{where}: empty field name")
    if not FIELD_PATTERN.match(key):
        raise ValueError(f"{where}: field names are [A-Za-z0-9_-] parts joined by '.', got {key!r}")


def _typed(kind: str, raw: str, where: str) -> Scalar:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"{where}: empty value")
    if not kind:
        return raw.strip()
    value = convert_value(kind, raw.strip(), where)
    if value is None:
        raise ValueError(f"{where}: empty value")
    return value


def _bound(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{where}: must be a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}: must be a finite number, got {value!r}")
    return number


def convert_condition(
    wire: WireCondition, schema: CatalogSchema, where: str, value_where: str | None = None
) -> Condition:
    """A request condition typed by ``schema``; ValueError names the part (``where.any_of[1]``...).

    ``value_where`` names every ``any_of`` value instead (the map form has one string per field).
    """
    kind = schema.type_of(wire.field) or ""
    bounds = {name: _bound(getattr(wire, name), f"{where}.{name}") for name in BOUNDS}
    given = [name for name, b in bounds.items() if b is not None]
    if given and kind not in RANGE_TYPES:
        what = f"a {kind} field" if kind else "not declared in the catalog schema"
        raise ValueError(
            f"{where}.{given[0]}: ranges need an integer, float or datetime field; {wire.field!r} is {what}"
        )
    if not wire.any_of and not wire.none_of and not given:
        raise ValueError(f"{where}.any_of: empty; give values, none_of or a bound for {wire.field!r}")
    any_of = tuple(_typed(kind, v, value_where or f"{where}.any_of[{i}]") for i, v in enumerate(wire.any_of))
    none_of = tuple(_typed(kind, v, f"{where}.none_of[{i}]") for i, v in enumerate(wire.none_of))
    return Condition(kind, tuple(dict.fromkeys(any_of)), tuple(dict.fromkeys(none_of)), **bounds)


def parse_request_filters(
    raw: Mapping[str, str],
    conditions: Sequence[WireCondition] = (),
    schema: CatalogSchema = FASHION_SCHEMA,
    max_fields: int | None = None,
) -> dict[str, Condition]:
    """Wire filters and conditions as ``{field: Condition}``; ValueError names the bad field.

    A field may appear once in all (combine its parts in one condition); ``max_fields`` caps
    filters plus conditions.
    """
    total = len(raw) + len(conditions)
    if max_fields is not None and total > max_fields:
        where = "conditions" if conditions else "filters"
        raise ValueError(f"{where}: {total} filters and conditions given, at most {max_fields} allowed")
    parsed: dict[str, Condition] = {}
    for key, value in raw.items():
        where = f"filters[{key!r}]"
        _check_key(key, where)
        alternatives = [part.strip() for part in value.split(ALTERNATIVE_SEPARATOR)]
        if not value.strip() or any(not part for part in alternatives):
            raise ValueError(f"{where}: empty value; use 'a|b' for alternatives")
        parsed[key] = convert_condition(WireCondition(key, alternatives), schema, where, where)
    for i, wire in enumerate(conditions):
        where = f"conditions[{i}]"
        _check_key(wire.field, f"{where}.field")
        if wire.field in parsed:
            raise ValueError(
                f"{where}.field: {wire.field!r} is filtered twice; combine it into one condition"
            )
        parsed[wire.field] = convert_condition(wire, schema, where)
    return parsed


def _is_allowed(key: str, allowed: Collection[str]) -> bool:
    """Exact names, or ``prefix.*`` entries that allow every sub-field of ``prefix``."""
    if key in allowed:
        return True
    return any(entry.endswith(".*") and key.startswith(entry[:-1]) for entry in allowed)


def parse_filters(
    raw: Mapping[str, str], allowed: Collection[str] | None = None, max_fields: int | None = None
) -> dict[str, tuple[str, ...]]:
    """Untyped wire filters as ``{field: alternatives}``; ValueError names the bad field."""
    if max_fields is not None and len(raw) > max_fields:
        raise ValueError(f"filters: {len(raw)} fields given, at most {max_fields} allowed")
    parsed: dict[str, tuple[str, ...]] = {}
    for key, value in raw.items():
        _check_key(key, f"filters[{key!r}]")
        if allowed is not None and not _is_allowed(key, allowed):
            raise ValueError(f"filters[{key!r}]: unknown field; valid: {sorted(allowed)}")
        alternatives = tuple(part.strip() for part in value.split(ALTERNATIVE_SEPARATOR))
        if not value.strip() or any(not part for part in alternatives):
            raise ValueError(f"filters[{key!r}]: empty value; use 'a|b' for alternatives")
        parsed[key] = alternatives
    return parsed


# -- neutral -> adapter atoms -----------------------------------------------------------------


def _canonical_int(value: str) -> int | None:
    """The integer a string spells in canonical form, else None."""
    if re.fullmatch(r"-?[0-9]+", value) and str(int(value)) == value:
        return int(value)
    return None


def _untyped_atoms(key: str, values: Sequence[Scalar]) -> tuple[Atom, ...]:
    """Exact string match, plus the integers that canonical values spell (legacy, cluster ids)."""
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
    atoms = [Atom("any", tuple(dict.fromkeys(keywords)))]
    if integers:
        atoms.append(Atom("any", tuple(dict.fromkeys(integers))))
    return tuple(atoms)


def _epoch_text(seconds: float | None) -> str | None:
    return None if seconds is None else format_datetime(datetime.fromtimestamp(seconds, UTC))


def _value_atoms(key: str, kind: str, values: Sequence[Scalar]) -> tuple[Atom, ...]:
    if not values:
        return ()
    if not kind:
        return _untyped_atoms(key, values)
    if kind in ("keyword", "bool", "integer"):
        return (Atom("any", tuple(values)),)
    if kind == "float":
        return tuple(Atom("range", gte=float(v), lte=float(v)) for v in values)
    if kind == "datetime":
        return tuple(Atom("datetime", gte=str(v), lte=str(v)) for v in values)
    if kind == "text":
        return tuple(Atom("text", (str(v),)) for v in values)
    raise ValueError(f"filters[{key!r}]: unknown field type {kind!r}")


def _bounds_atom(condition: Condition) -> Atom | None:
    if not condition.has_range:
        return None
    c = condition
    if c.kind == "datetime":
        return Atom(
            "datetime",
            gte=_epoch_text(c.gte),
            gt=_epoch_text(c.gt),
            lte=_epoch_text(c.lte),
            lt=_epoch_text(c.lt),
        )
    return Atom("range", gte=c.gte, gt=c.gt, lte=c.lte, lt=c.lt)


def field_tests(filters: Filters | None) -> list[FieldTest]:
    """Neutral per-field tests for adapters; a field with nothing to test raises ValueError."""
    tests: list[FieldTest] = []
    for key, spec in (filters or {}).items():
        if isinstance(spec, Condition):
            condition = spec
        elif isinstance(spec, (str, bytes, int)):
            raise ValueError(f"filters[{key!r}]: expected a sequence of values, got {spec!r}")
        else:
            condition = Condition(any_of=tuple(spec))
        if not condition.any_of and not condition.none_of and not condition.has_range:
            raise ValueError(f"filters[{key!r}]: no values given")
        tests.append(
            FieldTest(
                key,
                _value_atoms(key, condition.kind, condition.any_of),
                _value_atoms(key, condition.kind, condition.none_of),
                _bounds_atom(condition),
            )
        )
    return tests


def filter_clauses(
    filters: Filters | None, atom: Callable[[str, Atom], Any], either: Callable[[list[Any]], Any]
) -> tuple[list[Any], list[Any]]:
    """``(must, must_not)`` backend clauses for ``filters``, the same way for every adapter.

    ``atom(key, a)`` builds one backend condition; ``either(conditions)`` the backend's "any of".
    """
    must: list[Any] = []
    must_not: list[Any] = []
    for test in field_tests(filters):
        if test.any_of:
            options = [atom(test.key, a) for a in test.any_of]
            must.append(options[0] if len(options) == 1 else either(options))
        if test.bounds is not None:
            must.append(atom(test.key, test.bounds))
        must_not.extend(atom(test.key, a) for a in test.none_of)
    return must, must_not


__all__ = [
    "filter_clauses",
    "Atom",
    "FieldTest",
    "WireCondition",
    "convert_condition",
    "field_tests",
    "parse_filters",
    "parse_request_filters",
]
