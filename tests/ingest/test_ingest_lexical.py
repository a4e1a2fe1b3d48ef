"""Ingest writes the lexical member's BM25 vector, and Reindex carries it into the new collection."""

from __future__ import annotations

from dataclasses import replace

from domain.lexical import LEXICAL_MEMBER, LexicalSpec, query_vector
from services.ingest.items import Product
from services.ingest.reindex import reindex
from services.storage.port import MemberQuery
from tests.ingest.conftest import BLUE, GREEN, RED, write_tiny_bundle
from tests.support.images import solid

NAMES = ["Puma Men Black T-shirt", "Fastrack Women Watch", "Nike Running Shoes", "Puma Tshirts Blue"]


def lexical_bundle(directory, version="1"):
    bundle = write_tiny_bundle(directory, version=version)
    return replace(bundle, extra={**bundle.extra, "lexical": LexicalSpec(weight=2.0).to_json()})


def products() -> list[Product]:
    colours = [RED, GREEN, BLUE, RED]
    return [
        Product(
            f"p{i}",
            image=solid(colours[i]),
            text=name,
            attributes={"articleType": "Tshirts" if i != 1 else "Watches"},
        )
        for i, name in enumerate(NAMES)
    ]


def lexical_ids(store, collection: str, text: str) -> list[str]:
    hits = store.query(collection, [MemberQuery(LEXICAL_MEMBER, query_vector(text), 10)])[LEXICAL_MEMBER]
    return [h.id for h in hits]


async def test_ingest_writes_bm25_vectors_of_name_and_attributes(make_core, tmp_path):
    core = make_core(lexical_bundle(tmp_path / "b"))
    summary = await core.upsert_stream(products())
    assert summary.upserted == 4
    found = lexical_ids(core.store, "catalog", "puma tshirt")
    assert found[:2] == ["p0", "p3"] or found[:2] == ["p3", "p0"]
    assert set(found) == {"p0", "p2", "p3"}  # p2 is a "Tshirts" item by attribute only
    assert lexical_ids(core.store, "catalog", "watches") == ["p1"]
    [point] = core.store.retrieve("catalog", ["p1"], with_vectors=True)
    expected = LexicalSpec(weight=2.0).document(NAMES[1], {"articleType": "Watches"})
    assert point.vectors[LEXICAL_MEMBER].indices == expected.indices


async def test_reindex_carries_the_lexical_member(make_core, tmp_path):
    old = make_core(lexical_bundle(tmp_path / "b1"))
    await old.upsert_stream(products())
    new = make_core(lexical_bundle(tmp_path / "b2", version="2"))
    result = await reindex(new)
    assert result.new_collection == "catalog__tiny-2"
    assert new.store.resolve_alias("catalog") == "catalog__tiny-2"
    assert lexical_ids(new.store, "catalog", "fastrack") == ["p1"]
    assert set(lexical_ids(new.store, "catalog", "t-shirts")) == {"p0", "p2", "p3"}
