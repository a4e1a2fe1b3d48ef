"""Filtered queries on a graph with payload links for tenant fields only: a filter on a tenant
field walks the graph, a selective filter on other fields is scanned exactly or walks with ACORN
(both adapters)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from qdrant_client import QdrantClient

from domain.lexical import SparseVector
from services.common.config import StoreConfig
from services.storage.factory import open_store
from services.storage.port import SPARSE, Condition, FieldIndex, MemberQuery, Point
from services.storage.qdrant import QdrantStore
from services.storage.scan_plan import (
    FilterGraph,
    MemberParams,
    linked_fields,
    member_params,
    names_linked_field,
    needs_estimate,
    plan_scans,
    scanned_members,
    walks_unlinked,
)
from services.storage.settings import IndexSettings
from tests.support.recording import recorded

N, DIM = 3000, 16
RARE = 0.04  # share of the "teal" items: a selective filter on an unlinked field
INDEXES = {"colour": "keyword", "brand": FieldIndex("keyword", "tenant")}
# the engine walks the graph for every filter (1 KB threshold); links for tenant fields
LINKED_GRAPH = {
    "hnsw_full_scan_threshold_kb": 1,
    "indexing_threshold_kb": 1,
    "hnsw_m": 8,
    "hnsw_payload_m": 8,
}


def catalog(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Point]]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    colour = np.where(rng.random(N) < RARE, "teal", "grey")
    brand = np.array(["A", "B", "C", "D"])[rng.integers(0, 4, N)]
    points = [
        Point(
            id=f"p{i}", vectors={"m": vectors[i]}, payload={"colour": str(colour[i]), "brand": str(brand[i])}
        )
        for i in range(N)
    ]
    return vectors, colour, brand, points


def filtered_recall(store, vectors: np.ndarray, filters, passing: np.ndarray, queries: int = 40) -> float:
    """Mean recall@10 of the store's filtered top 10 against exact search over the passing items."""
    rng = np.random.default_rng(7)
    allowed = np.flatnonzero(passing)
    found = 0
    for _ in range(queries):
        query = rng.standard_normal(DIM).astype(np.float32)
        hits = store.query("c", [MemberQuery("m", query, 10)], filters)["m"]
        exact = allowed[np.argsort(-(vectors[allowed] @ query))[:10]]
        found += len({f"p{i}" for i in exact} & {h.id for h in hits})
    return found / (10 * queries)


def test_linked_fields_are_the_indexes_with_links_when_the_collection_builds_any():
    indexes = [("brand", None), ("colour", False), ("shop", True)]
    assert linked_fields(16, indexes) == {"brand", "shop"}
    assert linked_fields(0, indexes) == frozenset()
    assert FilterGraph.of(0, 16, indexes).full_scan_threshold_kb == 10_000  # the engine's default


def test_only_a_required_value_of_a_linked_field_keeps_the_walk_in_its_subgraph():
    linked = frozenset({"brand"})
    assert names_linked_field({"brand": ("A",), "colour": ("teal",)}, linked)
    assert names_linked_field({"brand": Condition(kind="keyword", any_of=("A",))}, linked)
    assert not names_linked_field({"brand": Condition(kind="keyword", none_of=("A",))}, linked)
    assert not names_linked_field({"colour": ("teal",)}, linked)


def test_an_estimate_is_asked_only_where_the_engine_could_walk_an_unlinked_graph():
    graph = FilterGraph(1_000, frozenset({"brand"}))
    assert needs_estimate({"colour": ("teal",)}, graph, 10_000)
    assert not needs_estimate({"brand": ("A",)}, graph, 10_000)
    assert not needs_estimate(None, graph, 10_000)
    assert not needs_estimate({"colour": ("teal",)}, FilterGraph(10_000, frozenset()), 10_000)

    def no_estimate() -> int:
        raise AssertionError("estimated a filter the engine plans well")

    assert plan_scans({"brand": ("A",)}, graph, {"m": 256}, 10_000, no_estimate) == frozenset()


def test_members_are_scanned_while_their_matching_vectors_stay_under_the_threshold():
    dims = {"small": 256, "large": 1024, "lexical": SPARSE}
    # 10,000 KB: 10,000 vectors of 256 dims, 2,500 of 1,024; sparse members are never scanned
    assert scanned_members(2_000, dims, 10_000) == {"small", "large"}
    assert scanned_members(5_000, dims, 10_000) == {"small"}
    assert scanned_members(10_000, dims, 10_000) == frozenset()


def test_an_unscanned_member_walks_with_acorn_only_under_a_filter_that_names_no_linked_field():
    graph = FilterGraph(1_000, frozenset({"brand"}))
    assert walks_unlinked({"colour": ("teal",)}, graph)
    assert not walks_unlinked({"brand": ("A",), "colour": ("teal",)}, graph)
    assert not walks_unlinked(None, graph) and not walks_unlinked({}, graph)
    params = MemberParams(configured="graph", scan="exact", acorn="acorn")
    queries = [MemberQuery("a", np.ones(4), 5), MemberQuery("b", np.ones(4), 5)]
    queries.append(MemberQuery("lexical", SparseVector((1,), (1.0,)), 5))
    assert member_params(queries, frozenset({"a"}), params, acorn=True) == ["exact", "acorn", None]
    assert member_params(queries, frozenset(), params, acorn=False) == ["graph", "graph", None]


@pytest.mark.parametrize(
    "unlinked_kb, acorn, recall_floor",
    [(10_000, True, 1.0), (0, True, 0.95), (0, False, None)],
    ids=["scanned", "acorn-walk", "plain-walk"],
)
def test_a_selective_unlinked_filter_finds_its_true_neighbours_on_a_tenant_linked_graph(
    tmp_path, unlinked_kb, acorn, recall_floor
):
    vectors, colour, brand, points = catalog()
    store = open_store(
        StoreConfig(
            backend="edge",
            path=str(tmp_path),
            hnsw_unlinked_scan_threshold_kb=unlinked_kb,
            search_unlinked_acorn=acorn,
            **LINKED_GRAPH,
        )
    )
    try:
        store.ensure_collection("c", {"m": DIM}, INDEXES)
        store.upsert("c", points)
        store.optimize("c")
        assert store.inner._shard("c")[1].info().indexed_vectors_count == N
        rare = filtered_recall(store, vectors, {"colour": ("teal",)}, colour == "teal")
        if recall_floor is None:  # the engine alone walks a graph with no links for the filter
            assert rare < 0.5
        else:
            assert rare >= recall_floor
        # a tenant filter walks its linked subgraph either way
        assert filtered_recall(store, vectors, {"brand": ("A",)}, brand == "A") >= 0.98
        assert filtered_recall(store, vectors, {"brand": ("A",), "colour": ("grey",)}, brand == "A") >= 0.9
    finally:
        store.close()


@contextmanager
def server_mode_store(settings: IndexSettings, monkeypatch):
    """A server-mode adapter over qdrant-client's local engine with 600 items, the batches it
    sends and a query for item 0."""
    _, _, _, points = catalog()
    store = QdrantStore(QdrantClient(":memory:"), local=False, settings=settings)
    batches = recorded(store.client, "query_batch_points", monkeypatch)
    try:
        store.ensure_collection("c", {"m": DIM}, INDEXES)
        store.upsert("c", points[:600])
        yield store, batches, [MemberQuery("m", points[0].vectors["m"], 5)]
    finally:
        store.close()


@pytest.mark.filterwarnings("ignore:.*(Payload indexes|search_params).*:UserWarning")
def test_the_qdrant_adapter_asks_exact_search_for_scanned_members(monkeypatch):
    # local mode reports the engine's default threshold (10,000 KB), so ours must be above it
    settings = IndexSettings(full_scan_threshold_kb=1, unlinked_scan_threshold_kb=20_000)
    with server_mode_store(settings, monkeypatch) as (store, batches, query):
        counts = recorded(store.client, "count", monkeypatch)
        # the estimate (about 24 teal items) holds far less than 20,000 KB of vectors: exact
        hits = store.query("c", query, {"colour": ("teal",)})["m"]
        assert batches[-1]["requests"][0].params.exact is True and counts[-1]["exact"] is False
        assert all(h.payload["colour"] == "teal" for h in hits)
        store.query("c", query)  # unfiltered: no estimate, the configured params
        assert len(counts) == 1 and batches[-1]["requests"][0].params is None


@pytest.mark.filterwarnings("ignore:.*(Payload indexes|search_params).*:UserWarning")
def test_the_qdrant_adapter_asks_acorn_for_an_unlinked_walk(monkeypatch):
    with server_mode_store(IndexSettings(search_ef=64), monkeypatch) as (store, batches, query):
        # local mode stores no payload links: every filter walks unlinked (ACORN), never scanned
        # here (the engine's own threshold is above ours)
        hits = store.query("c", query, {"colour": ("grey",)})["m"]
        sent = batches[-1]["requests"][0].params
        assert sent.acorn.enable is True and not sent.exact and sent.hnsw_ef == 64
        assert hits and all(h.payload["colour"] == "grey" for h in hits)
        store.query("c", query)
        sent = batches[-1]["requests"][0].params
        assert sent.acorn is None and sent.hnsw_ef == 64
