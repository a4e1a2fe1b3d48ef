"""Payload helpers: cluster maps (nested or flat), display attributes."""

from __future__ import annotations

from services.search.hits import as_text, attributes_of, cluster_under, clusters_of, ranked_hits
from services.storage.port import ScoredPoint


def test_clusters_nested_flat_and_malformed():
    assert clusters_of({"cluster": {"m1": 3, "m2": 4.0, "m3": "x", "m4": True}}) == {"m1": 3, "m2": 4}
    assert clusters_of({"cluster.m1": 7, "cluster.m2": None, "articleType": "Shirts"}) == {"m1": 7}
    assert clusters_of({"id": "a"}) == {}
    assert cluster_under({"cluster": {"m1": 3}}, "m1") == 3
    assert cluster_under({"cluster": {"m1": 3}}, "m2") == -1
    assert cluster_under({"cluster.m2": 5}, "m2") == 5
    assert cluster_under({"cluster": {"m1": 2.5}}, "m1") == -1


def test_attributes_are_strings_without_internal_keys():
    payload = {
        "id": "42",
        "text": "Red Dress",
        "year": 2012,
        "price": 19.5,
        "rating": 4.0,
        "sale": True,
        "tags": ["a", "b"],
        "missing": None,
        "nan": float("nan"),
        "cluster": {"m1": 1},
        "cluster.m2": 3,
    }
    assert attributes_of(payload) == {
        "id": "42",
        "text": "Red Dress",
        "year": "2012",
        "price": "19.5",
        "rating": "4",
        "sale": "true",
        "tags": '["a", "b"]',
    }
    assert as_text({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'


def test_ranked_hits_carry_the_member_cluster():
    points = [ScoredPoint("a", 0.9, {"cluster": {"m1": 4, "m2": 1}}), ScoredPoint("b", 0.5, {})]
    assert [(h.id, h.score, h.cluster) for h in ranked_hits(points, "m1")] == [("a", 0.9, 4), ("b", 0.5, -1)]
