"""Payload helpers: cluster maps (nested or flat), display attributes."""

from __future__ import annotations

from domain.fusion import Contribution, FusedHit
from domain.payload import cluster_under, clusters_of
from services.search.hits import as_text, attributes_of, ranked_hits, result_hit
from services.storage.port import ScoredPoint, StoredPoint


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


def test_ranked_hits_are_keyed_by_store_key_and_carry_the_member_cluster():
    points = [
        ScoredPoint("a", 0.9, {"cluster": {"m1": 4, "m2": 1}}, key="ka"),
        ScoredPoint("b", 0.5, {}, key="kb"),
    ]
    assert [tuple(h) for h in ranked_hits(points, "m1")] == [("ka", 0.9, 4), ("kb", 0.5, -1)]
    assert [tuple(h) for h in ranked_hits(points, "m1", with_clusters=False)] == [
        ("ka", 0.9, -1),
        ("kb", 0.5, -1),
    ]


def test_page_clusters_fill_what_ranking_did_not_read():
    hit = FusedHit("ka", 0.3, (Contribution("m1", 1, 0.9, -1), Contribution("m2", 4, 0.7, 6)))
    point = StoredPoint("a", {"id": "a", "cluster": {"m1": 2, "m2": 5}, "color": "Red"}, key="ka")
    result = result_hit(hit, point, explain=True)
    assert result.id == "a" and result.attributes == {"id": "a", "color": "Red"}
    assert [(c.member, c.rank, c.cluster) for c in result.members] == [("m1", 1, 2), ("m2", 4, 6)]
    assert result_hit(hit, point, explain=False).members == ()
