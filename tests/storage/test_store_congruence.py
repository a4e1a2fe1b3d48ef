"""The same random catalog and queries on both adapters give the same ids, scores and counts."""

from __future__ import annotations

import numpy as np
import pytest

from domain.payload import collection_name
from services.common.config import StoreConfig
from services.storage.factory import open_store
from services.storage.port import MemberQuery, Point

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
