"""The catalog's field schema: which attributes are typed, indexed and may be ranged or faceted.

A schema file is TOML with one ``[fields]`` table of ``name = "type"``::

    [fields]
    brand = "keyword"
    price = "float"
    in_stock = "bool"
    launched = "datetime"
    productDisplayName = "text"

Types and what ingest stores for a declared field (every declared field gets a payload index):

- ``keyword``: the string as given (exact match, facets).
- ``integer``: a whole number (``"12"``; ``"12.0"`` too); ranges, exact match, facets.
- ``float``: a finite number; ranges and exact match.
- ``bool``: ``true/false/1/0/yes/no`` (any case), stored as the keyword ``"true"`` or ``"false"``
  (indexed as keyword: Qdrant Edge's Python binding turns a boolean match value into the integer
  1, so a JSON boolean could not be matched on that backend); exact match and facets.
- ``datetime``: RFC 3339 (``2024-05-01T10:00:00Z``, ``2024-05-01``; no offset means UTC), stored
  normalized as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``; range bounds are epoch seconds (UTC).
- ``text``: the string, with a full-text index (``any_of`` matches items whose text contains
  all words of the value).

A field may also be a table that adds a storage layout to its index::

    brand = { type = "keyword", tenant = true }     # most filtered queries name one or a few brands
    price = { type = "float", principal = true }    # most filtered queries carry a price range

``tenant`` (keyword fields) groups the stored points by the field's value; ``principal``
(integer, float or datetime; one field at most) orders them by it. Both make filtered queries on
that field cheaper (Qdrant's ``is_tenant`` / ``is_principal`` index options); they take effect
when the index is created, so a changed layout reaches a catalog by ``reindex``.

An empty value of a non-keyword type means "unknown" and leaves the field out of the item.
Attributes the schema does not declare are stored as strings, without an index: they can still be
filtered by exact match, at the cost of reading every candidate's payload.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

FIELD_TYPES = ("keyword", "integer", "float", "bool", "datetime", "text")
# Storage layouts a field's index may ask for, and the field types each applies to.
LAYOUTS = MappingProxyType({"tenant": ("keyword",), "principal": ("integer", "float", "datetime")})
RANGE_TYPES = ("integer", "float", "datetime")
FACET_TYPES = ("keyword", "integer", "bool")
# The payload index each field type gets (bool is stored as a keyword, see the module docstring).
INDEX_OF_TYPE = MappingProxyType(
    {
        "keyword": "keyword",
        "integer": "integer",
        "float": "float",
        "bool": "keyword",
        "datetime": "datetime",
        "text": "text",
    }
)
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")

Value = str | int | float


class SchemaError(ValueError):
    """The schema file is missing, malformed, or declares an unknown type (the message names the key)."""


@dataclass(frozen=True)
class FieldIndex:
    """A payload index: its type (a storage index type) and an optional layout of LAYOUTS."""

    kind: str
    layout: str = ""


@dataclass(frozen=True)
class CatalogSchema:
    """``{field name: type}`` of a catalog; see the module docstring for the types."""

    fields: Mapping[str, str] = field(default_factory=dict)
    source: str = "default"
    layouts: Mapping[str, str] = field(default_factory=dict)  # field -> a layout of LAYOUTS

    def __post_init__(self) -> None:
        for name, kind in self.fields.items():
            where = f"{self.source}: fields.{name}"
            if not FIELD_NAME.match(name):
                raise SchemaError(f"{where}: field names are [A-Za-z0-9_-], starting with a letter or _")
            if kind not in FIELD_TYPES:
                raise SchemaError(f"{where}: unknown type {kind!r}; valid: {list(FIELD_TYPES)}")
        for name, layout in self.layouts.items():
            where = f"{self.source}: fields.{name}.{layout}"
            if name not in self.fields:
                raise SchemaError(f"{where}: the field is not declared")
            if layout not in LAYOUTS:
                raise SchemaError(
                    f"{self.source}: fields.{name}: unknown layout {layout!r}; valid: {list(LAYOUTS)}"
                )
            if self.fields[name] not in LAYOUTS[layout]:
                raise SchemaError(
                    f"{where}: only for {' or '.join(LAYOUTS[layout])} fields, not {self.fields[name]}"
                )
        principal = [n for n, layout in self.layouts.items() if layout == "principal"]
        if len(principal) > 1:
            raise SchemaError(f"{self.source}: fields {principal}: at most one field may be principal")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "layouts", MappingProxyType(dict(self.layouts)))

    def type_of(self, name: str) -> str | None:
        """The declared type of a field, or None when the schema does not declare it."""
        return self.fields.get(name)

    def payload_indexes(self) -> dict[str, FieldIndex]:
        """``{field: payload index}`` for every declared field (its index type and layout)."""
        return {
            name: FieldIndex(INDEX_OF_TYPE[kind], self.layouts.get(name, ""))
            for name, kind in self.fields.items()
        }

    def fields_of(self, *kinds: str) -> list[str]:
        """Declared fields of the given types, in declaration order."""
        return [name for name, kind in self.fields.items() if kind in kinds]

    def convert(self, name: str, raw: Value, where: str = "") -> Value | None:
        """A value as stored for field ``name`` (None: leave the field out); ValueError names the field."""
        kind = self.fields.get(name)
        label = where or name
        if kind is None:
            return raw if isinstance(raw, str) else str(raw)
        return convert_value(kind, raw, label)

    def convert_attributes(self, attributes: Mapping[str, Value]) -> dict[str, Value]:
        """Every attribute converted (declared ones to their type, others to strings); empties dropped."""
        out: dict[str, Value] = {}
        for name, raw in attributes.items():
            value = self.convert(name, raw, f"attributes[{name!r}]")
            if value is not None:
                out[name] = value
        return out


def _number(kind: str, raw: Value, label: str) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"{label}: {raw!r} is not {'an' if kind == 'integer' else 'a'} {kind}")
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{label}: {raw!r} is not {'an' if kind == 'integer' else 'a'} {kind}") from None
    if not math.isfinite(number):
        raise ValueError(f"{label}: {raw!r} is not a finite number")
    return number


def convert_value(kind: str, raw: Value, label: str) -> Value | None:
    """``raw`` converted to ``kind`` (None for an empty string of a non-keyword type)."""
    if isinstance(raw, str) and not raw.strip() and kind not in ("keyword", "text"):
        return None
    if kind in ("keyword", "text"):
        return raw if isinstance(raw, str) else str(raw)
    if kind == "integer":
        number = _number(kind, raw, label)
        if not number.is_integer() or abs(number) >= 2**63:
            raise ValueError(f"{label}: {raw!r} is not an integer")
        return int(number)
    if kind == "float":
        return _number(kind, raw, label)
    if kind == "bool":
        return parse_bool(raw, label)
    if kind == "datetime":
        return format_datetime(parse_datetime(raw, label))
    raise ValueError(f"{label}: unknown type {kind!r}")


def parse_bool(raw: Value, label: str) -> str:
    """``"true"`` or ``"false"`` from the usual spellings; ValueError names the field."""
    word = str(raw).strip().lower()
    if word in TRUE_WORDS:
        return "true"
    if word in FALSE_WORDS:
        return "false"
    raise ValueError(f"{label}: {raw!r} is not a bool (true/false/1/0/yes/no)")


def parse_datetime(raw: Value, label: str) -> datetime:
    """An aware UTC datetime from RFC 3339 text (no offset: UTC) or epoch seconds."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        if not math.isfinite(raw):
            raise ValueError(f"{label}: {raw!r} is not a finite number of epoch seconds")
        return datetime.fromtimestamp(raw, UTC)
    text = str(raw).strip()
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError(
            f"{label}: {raw!r} is not an RFC 3339 datetime (e.g. 2024-05-01T10:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_datetime(moment: datetime) -> str:
    """The stored form: ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` in UTC."""
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


# The Fashion Product Images columns (see domain.catalog.STYLE_COLUMNS), without the id.
FASHION_SCHEMA = CatalogSchema(
    {
        "gender": "keyword",
        "masterCategory": "keyword",
        "subCategory": "keyword",
        "articleType": "keyword",
        "baseColour": "keyword",
        "season": "keyword",
        "year": "integer",
        "usage": "keyword",
        "productDisplayName": "text",
    },
    source="default schema",
)


def load_schema(path: str | Path | None) -> CatalogSchema:
    """The schema in ``path`` (a TOML file with a ``[fields]`` table); empty path: the Fashion default."""
    if not path or not str(path).strip():
        return FASHION_SCHEMA
    file = Path(path)
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SchemaError(f"catalog.schema: file not found: {file}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SchemaError(f"{file}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"fields"}
    if unknown:
        raise SchemaError(f"{file}: unknown key(s) {sorted(unknown)}; a schema has one [fields] table")
    fields = data.get("fields", {})
    if not isinstance(fields, dict):
        raise SchemaError(f'{file}: fields must be a table of name = "type"')
    types: dict[str, str] = {}
    layouts: dict[str, str] = {}
    for name, declared in fields.items():
        types[name], layout = _field_entry(declared, f"{file}: fields.{name}")
        if layout:
            layouts[name] = layout
    return CatalogSchema(types, source=str(file), layouts=layouts)


def _field_entry(declared: object, where: str) -> tuple[str, str]:
    """``(type, layout)`` of one ``[fields]`` entry: ``"type"`` or ``{ type = ..., <layout> = true }``."""
    if isinstance(declared, str):
        return declared, ""
    if not isinstance(declared, dict):
        raise SchemaError(f"{where}: type must be a string, one of {list(FIELD_TYPES)}, or a table")
    unknown = set(declared) - {"type", *LAYOUTS}
    if unknown:
        raise SchemaError(f"{where}: unknown key(s) {sorted(unknown)}; valid: type, {', '.join(LAYOUTS)}")
    kind = declared.get("type")
    if not isinstance(kind, str):
        raise SchemaError(f"{where}.type: required, a string, one of {list(FIELD_TYPES)}")
    for layout in LAYOUTS:
        if layout in declared and not isinstance(declared[layout], bool):
            raise SchemaError(f"{where}.{layout}: must be true or false")
    chosen = [layout for layout in LAYOUTS if declared.get(layout)]
    if len(chosen) > 1:
        raise SchemaError(f"{where}: choose one layout of {chosen}")
    return kind, chosen[0] if chosen else ""


__all__ = [
    "FACET_TYPES",
    "FASHION_SCHEMA",
    "FIELD_TYPES",
    "LAYOUTS",
    "RANGE_TYPES",
    "CatalogSchema",
    "FieldIndex",
    "SchemaError",
    "convert_value",
    "format_datetime",
    "load_schema",
    "parse_bool",
    "parse_datetime",
]
