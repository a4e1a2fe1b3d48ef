"""The same random catalog and queries on both adapters give the same ids, scores and counts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from domain.payload import collection_name
from services.common.config import StoreConfig
from services.storage.edge_settings import search_params as edge_search_params
from services.storage.factory import open_store
from services.storage.port import MemberQuery, Point
from services.storage.qdrant_settings import search_params as qdrant_search_params
from services.storage.settings import IndexSettings, index_settings, settings_from_parts
from tests.support.recording import recorded

MEMBERS = {"m1": 16, "m2": 8}
TYPES = ["Tshirts", "Shirts", "Jeans", "Watches"]


def random_points(n: int, seed: int = 0) -> list[Point]:
    rng = np.random.default_rng(seed)
    return [
        Point(
            id=f"prod-{i}",
            vectors={m: rng.standard_normal(d).astype(np.float32) for m, d in MEMBERS.items()},
            payload={"articleType": TYPES[i % 4], "cluster": {"m1": int(i % 3)}, "year": str(2010 + i % 5)},
        )
        for i in range(n)
    ]


@pytest.fixture
def both(tmp_path):
    stores = [
        open_store(StoreConfig(backend="edge", path=str(tmp_path / "edge"))),
        open_store(StoreConfig(backend="qdrant", url=":memory:")),
    ]
    points = random_points(300)
    for store in stores:
        store.ensure_collection("c", MEMBERS, ["articleType", "year"])
        for start in range(0, len(points), 64):
            store.upsert("c", points[start : start + 64])
        store.delete("c", ids=["prod-7", "prod-8"])
    yield stores
    for store in stores:
        store.close()


@pytest.mark.parametrize(
    "filters",
    [None, {"articleType": ("Shirts", "Jeans")}, {"cluster.m1": ("2",), "year": ("2012", "2013")}],
)
def test_same_query_same_ids(both, filters):
    rng = np.random.default_rng(42)
    for _ in range(5):
        queries = [MemberQuery(m, rng.standard_normal(d).tolist(), 15) for m, d in MEMBERS.items()]
        edge, local = (store.query("c", queries, filters) for store in both)
        for member in MEMBERS:
            assert [h.id for h in edge[member]] == [h.id for h in local[member]]
            np.testing.assert_allclose(
                [h.score for h in edge[member]], [h.score for h in local[member]], atol=1e-5
            )
    counts = [store.count("c", filters) for store in both]
    assert counts[0] == counts[1] > 0


def test_same_scroll_order_and_payloads(both):
    edge, local = (list(store.scroll("c", batch_size=50)) for store in both)
    assert [p.id for p in edge] == [p.id for p in local]
    assert len(edge) == 298
    assert [p.payload for p in edge] == [p.payload for p in local]


def test_collection_name_is_sanitized():
    assert (
        collection_name("catalog", "fashion-small", "20261125-1a2b") == "catalog__fashion-small-20261125-1a2b"
    )
    assert collection_name("my shop", "b/../x", "v 1") == "my-shop__b-..-x-v-1"
    assert collection_name("a__b", "n", "1") == "a_b__n-1"
    with pytest.raises(ValueError, match="bundle_version"):
        collection_name("catalog", "n", "///")


TUNED = StoreConfig(
    hnsw_m=8,
    hnsw_ef_construct=40,
    hnsw_full_scan_threshold_kb=2000,
    hnsw_payload_m=4,
    search_ef=32,
    search_acorn=True,
    segments=2,
    indexing_threads=1,
    indexing_threshold_kb=500,
    quantization="int8",
    quantization_always_ram=True,
    quantization_rescore=True,
    vector_datatype="float16",
)


def as_stored(diffs: dict, search_from: IndexSettings) -> IndexSettings:
    """What a Qdrant server reports for a collection created or updated with these diffs."""
    quantization = diffs.get("quantization_config")
    stored = settings_from_parts(
        diffs["hnsw_config"].model_dump(),
        diffs["optimizers_config"].model_dump() if "optimizers_config" in diffs else {},
        quantization.model_dump() if quantization is not None else None,
        {m: v.model_dump() for m, v in diffs.get("vectors_config", {}).items()},
    )
    return stored.searched_with(search_from)


def test_index_settings_reach_both_adapters(tmp_path, monkeypatch):
    expected = index_settings(TUNED)
    edge = open_store(dataclasses.replace(TUNED, backend="edge", path=str(tmp_path / "edge")))
    qdrant = open_store(dataclasses.replace(TUNED, backend="qdrant", url=":memory:"))
    # qdrant-client's local mode keeps no index and reports its defaults, so the Qdrant side is
    # read from the create request a server stores (field names as get_collection reports them).
    created = recorded(qdrant.inner.client, "create_collection", monkeypatch)
    points = random_points(60)
    try:
        for store in (edge, qdrant):
            store.ensure_collection("c", MEMBERS, ["articleType"])
            store.upsert("c", points)
        assert edge.index_settings("c") == expected
        assert as_stored(created[0], expected) == expected
        assert qdrant.index_settings("c").m == 16  # local mode: the built-in default, not ours
        # query-time settings: the same ef, ACORN and rescoring in both adapters' requests
        for params in (edge_search_params(expected), qdrant_search_params(expected)):
            assert params.hnsw_ef == 32 and params.quantization.rescore is True and params.acorn.enable
        query = [MemberQuery(m, points[5].vectors[m], 3) for m in MEMBERS]
        for store in (edge, qdrant):  # the quantized Edge shard still finds the point itself first
            assert [hits[0].id for hits in store.query("c", query).values()] == ["prod-5", "prod-5"]
    finally:
        edge.close()
        qdrant.close()


def test_bulk_indexing_switch_reaches_both_adapters(tmp_path, monkeypatch):
    expected = index_settings(TUNED)
    edge = open_store(dataclasses.replace(TUNED, backend="edge", path=str(tmp_path / "edge")))
    qdrant = open_store(dataclasses.replace(TUNED, backend="qdrant", url=":memory:"))
    updated = recorded(qdrant.inner.client, "update_collection", monkeypatch)
    try:
        for store in (edge, qdrant):
            store.ensure_collection("c", MEMBERS)
        for enabled, m in ((False, 0), (True, 8)):
            for store in (edge, qdrant):
                store.set_indexing("c", enabled)
            assert edge.index_settings("c") == dataclasses.replace(expected, m=m)
            assert as_stored(updated[-1], expected).m == m
        edge.upsert("c", random_points(30))
        assert edge.count("c") == 30  # the reopened shard takes writes
    finally:
        edge.close()
        qdrant.close()


def test_bad_store_settings_name_the_field():
    with pytest.raises(ValueError, match="store.quantization"):
        index_settings(StoreConfig(quantization="int4"))
    with pytest.raises(ValueError, match="store.vector_datatype 'bfloat16'"):
        index_settings(StoreConfig(vector_datatype="bfloat16"))
    with pytest.raises(ValueError, match="store.hnsw_m"):
        index_settings(StoreConfig(hnsw_m=-1))
