"""Ingest types declared attributes by the catalog schema, indexes them, and refuses bad values."""

from __future__ import annotations

import pytest

from domain.schema import CatalogSchema, FieldIndex, SchemaError, load_schema
from services.ingest.items import Product
from services.storage.filters import WireCondition
from tests.ingest.conftest import BLUE, RED
from tests.support.images import solid

SHOP = CatalogSchema({"brand": "keyword", "price": "float", "in_stock": "bool", "launched": "datetime"})


async def test_declared_fields_are_typed_indexed_and_filterable(make_core, bundle):
    core = make_core(bundle, schema=SHOP)
    products = [
        Product("a", solid(RED), attributes={"brand": "Nike", "price": "19.5", "in_stock": "yes"}),
        Product("b", solid(BLUE), attributes={"brand": "Acme", "price": "60", "launched": "2024-05-01"}),
        Product("c", solid(RED), attributes={"brand": "Nike", "price": "abc"}),  # bad: nothing written
        Product("d", solid(BLUE), attributes={"size": "M", "in_stock": "0"}),  # size undeclared
    ]
    summary = await core.upsert_stream(products)
    assert summary.upserted == 3 and summary.failed == 1
    assert summary.errors[0].id == "c" and summary.errors[0].code == "INVALID_ARGUMENT"
    assert "attributes['price']" in summary.errors[0].message and "'abc'" in summary.errors[0].message
    assert core.store.retrieve(core.collection, ["c"]) == []
    assert core.blobs is not None and core.blobs.get("c") is None
    stored = {p.id: p.payload for p in core.store.scroll(core.collection)}
    assert stored["a"]["price"] == 19.5 and stored["a"]["in_stock"] == "true"
    assert stored["b"]["launched"] == "2024-05-01T00:00:00Z" and stored["d"]["size"] == "M"
    assert (await core.count({"brand": "Nike"}))[0] == 1
    assert (await core.count({"size": "M"}))[0] == 1
    assert (await core.count({}, [WireCondition("price", gt=20.0)]))[0] == 1
    indexed = set(core.store.inner._shard(core.collection)[1].info().payload_schema)
    assert {"brand", "price", "in_stock", "launched", "id", "bundle_version"} <= indexed
    assert await core.delete(filters={}, conditions=[WireCondition("in_stock", any_of=["false"])]) == 1
    with pytest.raises(ValueError, match=r"conditions\[0\]\.lte: ranges need .*'brand' is a keyword"):
        await core.delete(conditions=[WireCondition("brand", lte=3.0)])
    assert (await core.count())[0] == 2


def test_schema_file_errors_name_the_key(tmp_path):
    good = tmp_path / "shop.toml"
    good.write_text('[fields]\nbrand = "keyword"\nprice = "float"\n')
    assert load_schema(good).fields == {"brand": "keyword", "price": "float"}
    bad = tmp_path / "bad.toml"
    bad.write_text('[fields]\nprice = "money"\n')
    with pytest.raises(SchemaError, match=r"fields\.price: unknown type 'money'"):
        load_schema(bad)
    with pytest.raises(SchemaError, match="catalog.schema: file not found"):
        load_schema(tmp_path / "missing.toml")
    assert load_schema("").type_of("year") == "integer"


def test_schema_file_layouts(tmp_path):
    shop = tmp_path / "shop.toml"
    shop.write_text(
        "[fields]\n"
        'brand = { type = "keyword", tenant = true }\n'
        'price = { type = "float", principal = true }\n'
        'year = { type = "integer" }\n'
    )
    schema = load_schema(shop)
    assert schema.fields == {"brand": "keyword", "price": "float", "year": "integer"}
    assert schema.payload_indexes() == {
        "brand": FieldIndex("keyword", "tenant"),
        "price": FieldIndex("float", "principal"),
        "year": FieldIndex("integer"),
    }


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('price = { type = "float", tenant = true }', r"fields\.price\.tenant: only for keyword fields"),
        ('brand = { type = "keyword", principal = true }', r"fields\.brand\.principal: only for integer"),
        ('price = { type = "float", sorted = true }', r"fields\.price: unknown key\(s\) \['sorted'\]"),
        ('price = { type = "float", principal = "yes" }', r"fields\.price\.principal: must be true or false"),
        ("price = { principal = true }", r"fields\.price\.type: required"),
        ('brand = { type = "keyword", tenant = true, principal = true }', r"fields\.brand: choose one"),
        (
            'price = { type = "float", principal = true }\nyear = { type = "integer", principal = true }',
            r"\['price', 'year'\]: at most one field may be principal",
        ),
        ("price = 3", r"fields\.price: type must be a string"),
    ],
)
def test_schema_layout_errors_name_the_key(tmp_path, entry, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(f"[fields]\n{entry}\n")
    with pytest.raises(SchemaError, match=message):
        load_schema(bad)
