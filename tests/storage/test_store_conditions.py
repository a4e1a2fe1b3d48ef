"""Typed conditions and facets on both adapters, each checked against a brute-force count.

A shop catalog with fields the Fashion layout lacks (brand, price, in_stock, launched) goes
through the schema's conversion, is written with the schema's payload indexes, and every
filter/facet is compared with the same predicate evaluated in Python over the source rows.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest
from qdrant_client import models

from domain.schema import CatalogSchema, FieldIndex
from services.common.config import StoreConfig
from services.storage.factory import open_store
from services.storage.filters import WireCondition, parse_request_filters
from services.storage.port import FieldNotIndexed, MemberQuery, Point
from services.storage.qdrant_settings import qdrant_index_schema

MEMBERS = {"m1": 8}
SCHEMA = CatalogSchema(
    {
        "brand": "keyword",
        "articleType": "keyword",
        "price": "float",
        "year": "integer",
        "in_stock": "bool",
        "launched": "datetime",
    }
)
# The same fields with storage layouts on their indexes: every case must answer the same.
LAID_OUT = CatalogSchema(dict(SCHEMA.fields), layouts={"brand": "tenant", "price": "principal"})
BRANDS = ["Nike", "Adidas", "Puma", "Acme", "Zara"]
TYPES = ["Tshirts", "Shirts", "Jeans"]


def rows(n: int = 120) -> list[dict[str, str]]:
    """Source attributes as a shop would send them (strings); some rows lack brand or price."""
    out = []
    for i in range(n):
        row = {
            "articleType": TYPES[i % 3],
            "year": str(2015 + i % 6),
            "in_stock": ["yes", "false", "TRUE", "0"][i % 4],
            "launched": f"2024-0{1 + i % 9}-{10 + i % 15}T08:30:00Z",
            "colour_note": f"note-{i % 4}",  # undeclared: stored as a string, unindexed
        }
        if i % 7:
            row["brand"] = BRANDS[i % 5]
        if i % 11:
            row["price"] = f"{5 + (i * 37) % 95}.{i % 10}9"
        out.append(row)
    return out


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


@pytest.fixture(scope="module")
def source() -> list[dict[str, str]]:
    return rows()


@pytest.fixture(params=["edge", "qdrant", "edge, laid out", "qdrant, laid out"])
def store(request, tmp_path, source):
    backend, _, layout = request.param.partition(", ")
    cfg = (
        StoreConfig(backend="edge", path=str(tmp_path / "edge"))
        if backend == "edge"
        else StoreConfig(backend="qdrant", url=":memory:")
    )
    store = open_store(cfg)
    store.ensure_collection("shop", MEMBERS, (LAID_OUT if layout else SCHEMA).payload_indexes())
    rng = np.random.default_rng(3)
    points = [
        Point(f"p{i}", {"m1": rng.standard_normal(8)}, SCHEMA.convert_attributes(row))
        for i, row in enumerate(source)
    ]
    store.upsert("shop", points)
    yield store
    store.close()


def matching(source, predicate) -> set[str]:
    return {f"p{i}" for i, row in enumerate(source) if predicate(row)}


def found(store, filters) -> set[str]:
    return {p.id for p in store.scroll("shop", filters=filters)}


CASES = [
    ("brand keyword", {"brand": "Nike|Puma"}, [], lambda r: r.get("brand") in ("Nike", "Puma")),
    (
        "price range",
        {},
        [WireCondition("price", gte=20.0, lt=50.0)],
        lambda r: "price" in r and 20.0 <= float(r["price"]) < 50.0,
    ),
    (
        "none_of brand (items without brand pass)",
        {},
        [WireCondition("brand", none_of=["Acme", "Zara"])],
        lambda r: r.get("brand") not in ("Acme", "Zara"),
    ),
    ("bool", {"in_stock": "true"}, [], lambda r: r["in_stock"].lower() in ("yes", "true")),
    (
        "bool none_of",
        {},
        [WireCondition("in_stock", none_of=["yes"])],
        lambda r: r["in_stock"].lower() not in ("yes", "true"),
    ),
    (
        "datetime range (epoch bounds)",
        {},
        [WireCondition("launched", gt=epoch("2024-03-12T08:30:00Z"), lte=epoch("2024-06-01T00:00:00Z"))],
        lambda r: epoch("2024-03-12T08:30:00Z") < epoch(r["launched"]) <= epoch("2024-06-01T00:00:00Z"),
    ),
    (
        "datetime any_of (RFC 3339, other offset)",
        {},
        [WireCondition("launched", any_of=["2024-02-11T09:30:00+01:00"])],
        lambda r: r["launched"] == "2024-02-11T08:30:00Z",
    ),
    (
        "integer range and any_of together",
        {"articleType": "Jeans"},
        [WireCondition("year", any_of=["2016", "2019", "2020"], gte=2017)],
        lambda r: r["articleType"] == "Jeans" and int(r["year"]) in (2019, 2020),
    ),
    ("float exact", {"price": "42.69"}, [], lambda r: r.get("price") == "42.69"),
    ("undeclared exact", {"colour_note": "note-2"}, [], lambda r: r["colour_note"] == "note-2"),
]


@pytest.mark.parametrize(("name", "raw", "conditions", "predicate"), CASES, ids=[c[0] for c in CASES])
def test_conditions_match_brute_force(store, source, name, raw, conditions, predicate):
    filters = parse_request_filters(raw, conditions, SCHEMA)
    expected = matching(source, predicate)
    assert expected, f"{name}: the case selects nothing"
    assert found(store, filters) == expected
    assert store.count("shop", filters) == len(expected)
    hits = store.query("shop", [MemberQuery("m1", [1.0] * 8, 200)], filters, payload_fields=())["m1"]
    assert len(hits) == len(expected)


def test_delete_by_condition_removes_exactly_the_matches(store, source):
    filters = parse_request_filters({}, [WireCondition("price", lte=30.0)], SCHEMA)
    expected = matching(source, lambda r: "price" in r and float(r["price"]) <= 30.0)
    assert store.delete("shop", filters=filters) == len(expected)
    assert store.count("shop") == len(source) - len(expected)
    assert not found(store, filters)


@pytest.mark.parametrize("field_name", ["brand", "articleType", "year", "in_stock"])
def test_facets_equal_brute_force_counts(store, source, field_name):
    filters = parse_request_filters({}, [WireCondition("price", gte=10.0)], SCHEMA)
    kept = [r for r in source if "price" in r and float(r["price"]) >= 10.0]
    counts = Counter(str(SCHEMA.convert(field_name, r[field_name])) for r in kept if field_name in r)
    facets = store.facet("shop", field_name, 3, filters)
    expected = sorted(counts.items(), key=lambda vc: (-vc[1], vc[0]))[:3]
    assert [(str(f.value), f.count) for f in facets] == expected
    everything = store.facet("shop", field_name, 100)
    total = Counter(str(SCHEMA.convert(field_name, r[field_name])) for r in source if field_name in r)
    assert {str(f.value): f.count for f in everything} == dict(total)


def test_facet_on_a_field_without_index_raises_the_typed_error(store):
    """Both adapters refuse alike (qdrant-client's local mode keeps no indexes, yet refuses too)."""
    store.ensure_collection("bare", MEMBERS, {"articleType": "keyword"})
    store.upsert("bare", [Point("p0", {"m1": np.ones(8)}, {"brand": "Nike", "articleType": "Jeans"})])
    store.swap_alias("bare_alias", "bare")
    for target in ("bare", "bare_alias"):
        with pytest.raises(FieldNotIndexed) as info:
            store.facet(target, "brand", 5)
        assert (info.value.field_name, info.value.collection) == ("brand", "bare")
    assert store.facet("bare_alias", "articleType", 5) == [("Jeans", 1)]


def test_stored_values_are_typed(store):
    point = store.retrieve("shop", ["p1"])[0]
    assert isinstance(point.payload["price"], float)
    assert point.payload["year"] == 2016
    assert point.payload["in_stock"] == "false"
    assert point.payload["launched"] == "2024-02-11T08:30:00Z"
    assert point.payload["colour_note"] == "note-1"


def test_edge_indexes_carry_the_schema_layouts(tmp_path):
    store = open_store(StoreConfig(backend="edge", path=str(tmp_path / "edge")))
    try:
        store.ensure_collection("shop", MEMBERS, LAID_OUT.payload_indexes())
        _, shard = store.inner._shard("shop")  # no port call reports index params
        schema = shard.info().payload_schema
        assert schema["brand"].params.is_tenant is True
        assert schema["brand"].params.enable_hnsw is True  # payload links for tenant fields only
        assert schema["price"].params.is_principal is True
        assert schema["year"].params.enable_hnsw is False
        assert schema["articleType"].params.enable_hnsw is False
    finally:
        store.close()


@pytest.mark.parametrize(
    ("spec", "params", "flag"),
    [
        (FieldIndex("keyword", "tenant"), models.KeywordIndexParams, "is_tenant"),
        (FieldIndex("integer", "principal"), models.IntegerIndexParams, "is_principal"),
        (FieldIndex("float", "principal"), models.FloatIndexParams, "is_principal"),
        (FieldIndex("datetime", "principal"), models.DatetimeIndexParams, "is_principal"),
    ],
)
def test_qdrant_index_params_carry_the_layout(spec, params, flag):
    # local mode keeps no payload indexes, so the params a server would get are checked here
    schema = qdrant_index_schema(spec)
    assert isinstance(schema, params) and getattr(schema, flag) is True
    assert schema.enable_hnsw is (spec.layout == "tenant")
    plain = qdrant_index_schema(FieldIndex(spec.kind))
    assert getattr(plain, flag) is None and plain.enable_hnsw is False


def test_a_layout_its_type_cannot_take_is_refused(tmp_path):
    store = open_store(StoreConfig(backend="edge", path=str(tmp_path / "edge")))
    try:
        with pytest.raises(ValueError, match="layout 'tenant' does not apply to float"):
            store.ensure_collection("shop", MEMBERS, {"price": FieldIndex("float", "tenant")})
    finally:
        store.close()
