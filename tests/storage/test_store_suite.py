"""One suite, two adapters: Qdrant Edge in tmp_path and qdrant-client local mode must agree."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from services.common.config import StoreConfig
from services.storage.factory import open_store
from services.storage.port import CollectionNotFound, MemberQuery, Point, StoreError, VectorStore, point_id

VECTORS = {"m1": 4, "m2": 3}
INDEXES = {"articleType": "keyword", "gender": "keyword", "cluster.m1": "integer"}
# Unit axes make nearest neighbours obvious: p0 is nearest e0 under m1, p1 nearest e1, ...
CATALOG = [
    ("p0", [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0], "Tshirts", "Men", 0),
    ("p1", [0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0], "Shirts", "Women", 1),
    ("p2", [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0], "Jeans", "Men", 1),
    ("p3", [0.9, 0.1, 0.0, 0.0], [0.0, 0.1, 0.9], "Shirts", "Men", 0),
    ("p4", [0.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.0], "Watches", "Women", 2),
]


def store_config(backend: str, tmp_path: Path, persistent: bool = False) -> StoreConfig:
    """Edge in tmp_path; qdrant-client local mode in memory (or on disk when ``persistent``)."""
    if backend == "edge":
        return StoreConfig(backend="edge", path=str(tmp_path / "edge"))
    url = f"path:{tmp_path / 'local'}" if persistent else ":memory:"
    return StoreConfig(backend="qdrant", url=url)


def make_points(rows=CATALOG, version: str = "1") -> list[Point]:
    """Points for catalog rows: attributes, an integer cluster id and the bundle version."""
    return [
        Point(
            id=pid,
            vectors={"m1": v1, "m2": v2},
            payload={
                "articleType": kind,
                "gender": gender,
                "cluster": {"m1": cluster},
                "bundle_version": version,
            },
        )
        for pid, v1, v2, kind, gender, cluster in rows
    ]


@pytest.fixture(params=["edge", "qdrant"])
def store(request, tmp_path) -> Iterator[VectorStore]:
    """A fresh store of each backend with collection ``c1`` loaded with CATALOG."""
    s = open_store(store_config(request.param, tmp_path))
    s.ensure_collection("c1", VECTORS, INDEXES)
    s.upsert("c1", make_points())
    yield s
    s.close()


def ids(points) -> list[str]:
    return [p.id for p in points]


def test_ensure_is_idempotent_and_rejects_other_vectors(store):
    store.ensure_collection("c1", VECTORS, INDEXES)
    assert store.count("c1") == len(CATALOG)
    with pytest.raises(StoreError, match="has vectors"):
        store.ensure_collection("c1", {"m1": 8})
    with pytest.raises(ValueError, match="collection name"):
        store.ensure_collection("../evil", VECTORS)
    with pytest.raises(ValueError, match="unknown type 'geo'"):
        store.ensure_collection("c2", VECTORS, {"name": "geo"})
    assert store.collections() == ["c1"]


def test_count_and_filters(store):
    assert store.count("c1") == 5
    assert store.count("c1", {"articleType": ("Shirts",)}) == 2
    assert store.count("c1", {"articleType": ("Shirts", "Jeans")}) == 3
    assert store.count("c1", {"articleType": ("Shirts",), "gender": ("Men",)}) == 1
    assert store.count("c1", {"cluster.m1": ("1",)}) == 2  # string spelling an int matches the int
    assert store.count("c1", {"cluster.m1": (0, 2)}) == 3
    assert store.count("c1", {"cluster.m1": ("01",)}) == 0  # not canonical: only the string matches
    assert store.count("c1", {"bundle_version": ("1",)}) == 5  # stored as a string, matched as one
    assert store.count("c1", {"nosuchfield": ("x",)}) == 0
    with pytest.raises(ValueError, match="no values"):
        store.count("c1", {"gender": ()})


def test_retrieve_with_vectors_in_requested_order(store):
    got = store.retrieve("c1", ["p3", "missing", "p0", "p3"], with_vectors=True)
    assert ids(got) == ["p3", "p0"]
    assert got[1].payload["id"] == "p0" and got[1].payload["cluster"] == {"m1": 0}
    expected = np.array(CATALOG[3][1]) / np.linalg.norm(CATALOG[3][1])  # cosine stores unit vectors
    np.testing.assert_allclose(got[0].vectors["m1"], expected, atol=1e-6)
    assert set(got[0].vectors) == {"m1", "m2"}
    assert store.retrieve("c1", ["p1"])[0].vectors == {}


def test_reupsert_same_id_keeps_one_point_and_later_wins(store):
    rows = [("p0", [0, 0, 0, 1.0], [1.0, 0, 0], "Socks", "Men", 2)]
    store.upsert("c1", make_points(rows))
    store.upsert("c1", make_points(rows * 2, version="2"))  # twice in one call: one point
    assert store.count("c1") == 5
    (p0,) = store.retrieve("c1", ["p0"])
    assert p0.payload["articleType"] == "Socks" and p0.payload["bundle_version"] == "2"
    first = Point("p9", {"m1": [1, 0, 0, 0]}, {"articleType": "first"})
    last = Point("p9", {"m1": [1, 0, 0, 0]}, {"articleType": "last"})
    store.upsert("c1", [first, last])
    assert store.retrieve("c1", ["p9"])[0].payload["articleType"] == "last"


def test_query_ranks_each_member(store):
    result = store.query(
        "c1",
        [MemberQuery("m1", [1.0, 0.0, 0.0, 0.0], 3), MemberQuery("m2", [0.0, 0.0, 1.0], 2)],
    )
    assert ids(result["m1"])[:2] == ["p0", "p3"]
    assert result["m1"][0].score == pytest.approx(1.0, abs=1e-5)
    assert result["m1"][0].score >= result["m1"][1].score >= result["m1"][2].score
    assert ids(result["m2"]) == ["p0", "p3"]
    assert result["m2"][0].payload["articleType"] == "Tshirts"


def test_query_without_payload_ranks_by_key_and_keys_read_back(store):
    queries = [MemberQuery("m1", [1.0, 0.0, 0.0, 0.0], 3)]
    with_payload = store.query("c1", queries)["m1"]
    bare = store.query("c1", queries, payload_fields=())["m1"]
    assert [p.key for p in bare] == [p.key for p in with_payload] == [point_id(i) for i in ids(with_payload)]
    assert [p.score for p in bare] == pytest.approx([p.score for p in with_payload])
    assert all(p.id == "" and p.payload == {} for p in bare)
    some = store.query("c1", queries, payload_fields=("gender",))["m1"]
    assert [set(p.payload) for p in some] == [{"id", "gender"}] * 3 and ids(some) == ids(with_payload)
    keys = [bare[2].key, point_id("missing"), bare[0].key, bare[2].key]
    got = store.retrieve_keys("c1", keys)
    assert [(p.key, p.id) for p in got] == [(bare[2].key, ids(with_payload)[2]), (bare[0].key, "p0")]
    assert got[1].payload["articleType"] == "Tshirts" and got[1].vectors == {}
    assert set(store.retrieve_keys("c1", [bare[0].key], with_vectors=True)[0].vectors) == {"m1", "m2"}
    assert store.retrieve_keys("c1", []) == []


def test_store_side_rrf_matches_rrf_over_the_member_lists(store):
    queries = [MemberQuery("m1", [1.0, 0.2, 0.0, 0.1], 4), MemberQuery("m2", [0.1, 0.3, 1.0], 4)]
    lists = store.query("c1", queries)
    expected: dict[str, float] = {}
    for hits in lists.values():
        for rank, hit in enumerate(hits, start=1):
            expected[hit.id] = expected.get(hit.id, 0.0) + 1.0 / (60 + rank)
    fused = store.query_rrf("c1", queries, k=60, limit=4)
    assert {p.id: p.score for p in fused} == pytest.approx(
        dict(sorted(expected.items(), key=lambda kv: -kv[1])[:4])
    )
    assert [p.score for p in fused] == sorted((p.score for p in fused), reverse=True)
    assert all(p.key == point_id(p.id) and p.payload["id"] == p.id for p in fused)
    women = store.query_rrf("c1", queries, k=60, limit=5, filters={"gender": ("Women",)})
    assert sorted(ids(women)) == ["p1", "p4"]
    with pytest.raises(ValueError, match="unknown member"):
        store.query_rrf("c1", [MemberQuery("zz", [1.0, 0, 0, 0], 5)], k=60, limit=5)


def test_query_with_filter_and_bad_input(store):
    result = store.query("c1", [MemberQuery("m1", [1.0, 0, 0, 0], 5)], {"gender": ("Women",)})
    assert ids(result["m1"]) == ["p1", "p4"] or ids(result["m1"]) == ["p4", "p1"]
    assert {p.payload["gender"] for p in result["m1"]} == {"Women"}
    with pytest.raises(ValueError, match="unknown member 'zz'; valid: \\['m1', 'm2'\\]"):
        store.query("c1", [MemberQuery("zz", [1.0, 0, 0, 0], 5)])
    with pytest.raises(ValueError, match="needs 3 values, got 4"):
        store.query("c1", [MemberQuery("m2", [1.0, 0, 0, 0], 5)])
    with pytest.raises(ValueError, match="limit must be > 0"):
        store.query("c1", [MemberQuery("m1", [1.0, 0, 0, 0], 0)])
    with pytest.raises(ValueError, match="unknown member"):
        store.upsert("c1", [Point("px", {"m9": [1.0]}, {})])


def test_delete_by_ids_filter_and_both(store):
    assert store.delete("c1", ids=["p0", "nope"]) == 1
    assert store.count("c1") == 4
    assert store.delete("c1", filters={"articleType": ("Shirts",)}) == 2
    assert ids(store.retrieve("c1", ["p1", "p3", "p2"])) == ["p2"]
    assert store.delete("c1", ids=["p2", "p4"], filters={"gender": ("Women",)}) == 1  # ids AND filter
    assert ids(store.scroll("c1")) == ["p2"]
    with pytest.raises(ValueError, match="refusing to delete everything"):
        store.delete("c1")


def test_scroll_in_batches_with_filters(store):
    everything = list(store.scroll("c1", batch_size=2, with_vectors=True))
    assert sorted(ids(everything)) == ["p0", "p1", "p2", "p3", "p4"]
    assert all(set(p.vectors) == {"m1", "m2"} for p in everything)
    assert sorted(ids(store.scroll("c1", batch_size=1, filters={"gender": ("Men",)}))) == ["p0", "p2", "p3"]
    with pytest.raises(ValueError, match="batch_size"):
        list(store.scroll("c1", batch_size=0))


def test_alias_swap_and_drop(store):
    assert store.resolve_alias("catalog") is None
    store.ensure_collection("c2", VECTORS)
    store.upsert("c2", make_points(CATALOG[:2], version="2"))
    assert store.swap_alias("catalog", "c1") is None
    assert store.count("catalog") == 5
    assert store.swap_alias("catalog", "c2") == "c1"
    assert store.resolve_alias("catalog") == "c2"
    assert store.count("catalog") == 2
    assert ids(store.query("catalog", [MemberQuery("m1", [0, 1.0, 0, 0], 1)])["m1"]) == ["p1"]
    with pytest.raises(CollectionNotFound):
        store.swap_alias("catalog", "nope")
    with pytest.raises(ValueError, match="clashes"):
        store.swap_alias("c1", "c2")
    with pytest.raises(ValueError, match="is an alias"):
        store.ensure_collection("catalog", VECTORS)
    store.drop_collection("c2")
    assert store.resolve_alias("catalog") is None and store.collections() == ["c1"]
    store.drop_collection("c2")  # dropping a missing collection is a no-op
    with pytest.raises(CollectionNotFound):
        store.count("c2")
    with pytest.raises(CollectionNotFound):
        store.query("catalog", [MemberQuery("m1", [1.0, 0, 0, 0], 1)])


def test_optimize_keeps_results(store):
    before = store.query("c1", [MemberQuery("m1", [1.0, 0, 0, 0], 5)])
    store.optimize("c1")
    store.flush()
    assert ids(store.query("c1", [MemberQuery("m1", [1.0, 0, 0, 0], 5)])["m1"]) == ids(before["m1"])


def test_readers_never_fail_during_alias_swaps(store):
    """A reader querying the alias in a loop sees no error and no empty result while it is swapped."""
    store.ensure_collection("c2", VECTORS)
    store.upsert("c2", make_points(version="2"))
    store.swap_alias("catalog", "c1")
    errors: list[BaseException] = []
    empties = 0
    done = threading.Event()

    def reader() -> None:
        nonlocal empties
        while not done.is_set():
            try:
                hits = store.query("catalog", [MemberQuery("m1", [1.0, 0, 0, 0], 3)])["m1"]
                empties += not hits
            except BaseException as exc:  # noqa: BLE001 - the test reports whatever went wrong
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(40):
        store.swap_alias("catalog", "c2" if i % 2 == 0 else "c1")
    done.set()
    thread.join()
    assert errors == [] and empties == 0


@pytest.mark.parametrize("backend", ["edge", "qdrant"])
def test_reopen_after_close_keeps_data(backend, tmp_path):
    cfg = store_config(backend, tmp_path, persistent=True)
    first = open_store(cfg)
    first.ensure_collection("c1", VECTORS, INDEXES)
    first.upsert("c1", make_points())
    first.swap_alias("catalog", "c1")
    first.flush()
    first.close()
    again = open_store(cfg)
    try:
        assert again.count("catalog") == 5
        assert again.resolve_alias("catalog") == "c1"
        assert ids(again.query("catalog", [MemberQuery("m1", [0, 0, 1.0, 0], 1)])["m1"]) == ["p2"]
    finally:
        again.close()


def test_edge_shard_is_exclusive_and_indexed(tmp_path):
    from services.storage.edge import EdgeStore

    cfg = store_config("edge", tmp_path)
    first = open_store(cfg)
    first.ensure_collection("c1", VECTORS, INDEXES)
    second = EdgeStore(cfg.path)
    with pytest.raises(StoreError, match="another process"):
        second.count("c1")
    assert set(first.inner._shard("c1")[1].info().payload_schema) == set(INDEXES)
    first.close()
    assert second.count("c1") == 0
    second.close()


def test_open_store_rejects_unknown_backend(tmp_path):
    with pytest.raises(ValueError, match=r"unknown store backend 'redis'; valid: \['edge', 'qdrant'\]"):
        open_store(StoreConfig(backend="redis"))
    with pytest.raises(ValueError, match="store.url is required"):
        open_store(StoreConfig(backend="qdrant", url=""))
    with pytest.raises(ValueError, match="expected http"):
        open_store(StoreConfig(backend="qdrant", url="ftp://x"))
