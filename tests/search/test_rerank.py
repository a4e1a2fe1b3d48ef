"""Cluster-aware re-rank, MMR and the per-cluster cap on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from domain.fusion import FusedHit, RankedHit, rrf, single
from domain.rerank import cap_per_cluster, cluster_rerank, majority_clusters, mmr

# m1 clusters: x 9, y 4, z 4 -> majority 4;  m2 clusters: y 6, x 8, z 6 -> majority 6
# rrf k=0: x = 1 + 1/2 = 1.5, y = 1/2 + 1 = 1.5, z = 1/3 + 1/3
LISTS = {
    "m1": [RankedHit("x", 0.9, 9), RankedHit("y", 0.8, 4), RankedHit("z", 0.7, 4)],
    "m2": [RankedHit("y", 0.9, 6), RankedHit("x", 0.8, 8), RankedHit("z", 0.7, 6)],
}


def ids(hits) -> list[str]:
    return [h.id for h in hits]


def test_majority_cluster_per_member():
    assert majority_clusters(LISTS, top_n=3) == {"m1": 4, "m2": 6}
    # top 1 only: each member's first hit decides
    assert majority_clusters(LISTS, top_n=1) == {"m1": 9, "m2": 6}
    # a tie in counts goes to the cluster whose best hit ranks higher
    tied = {
        "m1": [RankedHit("a", 0.9, 3), RankedHit("b", 0.8, 5), RankedHit("c", 0.7, 5), RankedHit("d", 0.6, 3)]
    }
    assert majority_clusters(tied, top_n=4) == {"m1": 3}
    assert majority_clusters({"m1": [RankedHit("a", 0.9)]}) == {}
    with pytest.raises(ValueError, match="top_n"):
        majority_clusters(LISTS, top_n=0)


def test_cluster_rerank_changes_the_order():
    fused = rrf(LISTS, k=0)
    assert ids(fused) == ["x", "y", "z"]  # x, y tie at 1.5 -> by id
    # boost 1: x agrees with neither (1.5), y with both (1.5 + 1.5 = 3.0), z with both (2/3 * 2)
    reranked = cluster_rerank(fused, LISTS, boost=1.0, top_n=3)
    assert ids(reranked) == ["y", "x", "z"]
    assert {h.id: h.score for h in reranked} == pytest.approx({"x": 1.5, "y": 3.0, "z": 4 / 3})
    # contributions are kept for the explanation
    assert reranked[0].contributions == {h.id: h for h in fused}["y"].contributions


def test_cluster_rerank_reads_clusters_from_the_payload_map():
    # the payload says x is in cluster 6 under m2: it agrees with one of two members -> 1.5 * (1 + 0.5)
    clusters = {"x": {"m1": 9, "m2": 6}}
    reranked = cluster_rerank(rrf(LISTS, k=0), LISTS, boost=1.0, top_n=3, clusters=clusters)
    assert {h.id: h.score for h in reranked} == pytest.approx({"x": 2.25, "y": 3.0, "z": 4 / 3})


def test_cluster_rerank_moves_negative_cosines_up():
    lists = {"m1": [RankedHit("p", 0.5, 1), RankedHit("q", -0.25, 1), RankedHit("r", -0.5, 2)]}
    reranked = cluster_rerank(single(lists, "m1"), lists, boost=0.5, top_n=2)
    # majority 1: p 0.5 + 0.25, q -0.25 + 0.125, r unchanged
    assert [(h.id, h.score) for h in reranked] == [("p", 0.75), ("q", -0.125), ("r", -0.5)]


def test_cluster_rerank_without_clusters_or_boost_keeps_order():
    plain = {"m1": [RankedHit("a", 0.9), RankedHit("b", 0.8)]}
    assert ids(cluster_rerank(rrf(plain), plain)) == ["a", "b"]
    assert ids(cluster_rerank(rrf(LISTS, k=0), LISTS, boost=0.0, top_n=3)) == ["x", "y", "z"]
    with pytest.raises(ValueError, match="boost"):
        cluster_rerank(rrf(LISTS), LISTS, boost=-1.0)


def hits(*pairs: tuple[str, float]) -> list[FusedHit]:
    return [FusedHit(i, s, ()) for i, s in pairs]


# a and b are the same direction, c is orthogonal; relevance a 1.0, b 0.75, c 0.0
CANDIDATES = hits(("a", 1.0), ("b", 0.875), ("c", 0.5))
VECTORS = {"a": np.array([1.0, 0.0]), "b": np.array([2.0, 0.0]), "c": np.array([0.0, 1.0])}


def test_mmr_diversifies_with_vectors():
    # after a: b = 0.5 * 0.75 - 0.5 * 1 = -0.125, c = 0.5 * 0 - 0.5 * 0 = 0 -> c
    assert ids(mmr(CANDIDATES, VECTORS, lam=0.5)) == ["a", "c", "b"]
    # lambda 0.75: b = 0.5625 - 0.25 = 0.3125 > c = 0 -> b
    assert ids(mmr(CANDIDATES, VECTORS, lam=0.75)) == ["a", "b", "c"]
    assert ids(mmr(CANDIDATES, VECTORS, lam=1.0)) == ["a", "b", "c"]
    assert ids(mmr(CANDIDATES, VECTORS, lam=0.5, limit=2)) == ["a", "c"]
    assert [h.score for h in mmr(CANDIDATES, VECTORS, lam=0.5)] == [1.0, 0.5, 0.875]


def test_mmr_with_a_similarity_callable():
    same = {frozenset("ab")}

    def similarity(left: str, right: str) -> float:
        return 1.0 if frozenset((left, right)) in same else 0.0

    assert ids(mmr(CANDIDATES, similarity, lam=0.5)) == ["a", "c", "b"]


def test_mmr_missing_vectors_count_as_unrelated():
    # without b's vector, b is not penalized: 0.5 * 0.75 > c's 0
    assert ids(mmr(CANDIDATES, {"a": VECTORS["a"], "c": VECTORS["c"]}, lam=0.5)) == ["a", "b", "c"]


def test_mmr_edges():
    assert mmr([], VECTORS, lam=0.5) == []
    assert mmr(CANDIDATES, VECTORS, lam=0.5, limit=0) == []
    with pytest.raises(ValueError, match="lambda"):
        mmr(CANDIDATES, VECTORS, lam=1.5)
    with pytest.raises(ValueError, match="lambda"):
        mmr(CANDIDATES, VECTORS, lam=float("nan"))
    with pytest.raises(ValueError, match="one size"):
        mmr(CANDIDATES, {"a": np.ones(2), "b": np.ones(3)}, lam=0.5)


def test_cap_per_cluster():
    ranked = hits(("a", 6), ("b", 5), ("c", 4), ("d", 3), ("e", 2), ("f", 1))
    cluster = {"a": 1, "b": 1, "c": 2, "d": 1, "e": -1, "f": -1}
    assert ids(cap_per_cluster(ranked, 1, lambda h: cluster[h.id])) == ["a", "c", "e", "f"]
    assert ids(cap_per_cluster(ranked, 2, lambda h: cluster[h.id])) == ["a", "b", "c", "e", "f"]
    with pytest.raises(ValueError, match="max_per_cluster"):
        cap_per_cluster(ranked, 0, lambda h: cluster[h.id])
