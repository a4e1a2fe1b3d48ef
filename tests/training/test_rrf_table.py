"""The weight search's numpy weighted RRF scores exactly what the served fusion code scores."""

from __future__ import annotations

import numpy as np
import pytest

from training.retrieval import QuerySet, fusion_function, score_system, top_k
from training.rrf_table import RRFTable

MEMBERS = ("m1", "m2", "m3")


def random_set(seed: int, queries: int = 40, gallery: int = 120, depth: int = 25, image: bool = False):
    """A query set ranked by three members over a random gallery (image queries exclude themselves)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, size=gallery)
    rows = rng.choice(gallery, size=queries, replace=False) if image else None
    query_labels = labels[rows] if image else rng.integers(0, 6, size=queries)
    query_set = QuerySet("q", [f"q{i}" for i in range(queries)], [labels == c for c in query_labels])
    for member in MEMBERS:
        vectors = rng.normal(size=(gallery, 8)).astype(np.float32)
        vectors[:, labels % 8] += 1.5  # members agree somewhat, so candidate lists overlap
        queries_v = vectors[rows] if image else rng.normal(size=(queries, 8)).astype(np.float32)
        query_set.rankings[member] = top_k(queries_v, vectors, depth, exclude=rows)
    return query_set


@pytest.mark.parametrize("image", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macro_equals_the_served_fusion(seed, image):
    query_set = random_set(seed, image=image)
    table = RRFTable(query_set, MEMBERS, excluded_self=image)
    rng = np.random.default_rng(100 + seed)
    for weights in [dict.fromkeys(MEMBERS, 1.0), {"m1": 0.0, "m2": 2.0, "m3": 0.5}] + [
        dict(zip(MEMBERS, rng.choice([0.0, 0.5, 1.0, 1.5, 2.0, 3.0], size=3), strict=True)) for _ in range(6)
    ]:
        if not any(weights.values()):
            continue
        served = score_system(
            query_set, fusion_function("weighted_rrf", weights, 60, 25), excluded_self=image
        )
        expected = np.array([served["per_query"][key] for key in query_set.keys])
        assert np.array_equal(table.per_query(weights, 60), expected), weights
        assert table.macro(weights, 60) == pytest.approx(served["macro"], abs=1e-12)


def test_ties_break_by_best_rank_then_id_as_text():
    # rows 2 and 10 tie on score (ranks (1, 2) and (2, 1), equal weights) and on best rank (1):
    # the id "10" sorts before "2" as text, so row 10 comes first
    query_set = QuerySet("q", ["q"], [np.isin(np.arange(12), [10])])
    query_set.rankings["m1"] = (np.array([[2, 10, 5]]), np.array([[0.9, 0.8, 0.1]]))
    query_set.rankings["m2"] = (np.array([[10, 2, 7]]), np.array([[0.9, 0.8, 0.1]]))
    weights = {"m1": 1.0, "m2": 1.0}
    table = RRFTable(query_set, ("m1", "m2"), k=1)
    served = score_system(query_set, fusion_function("weighted_rrf", weights, 60, 3), k=1)
    assert table.per_query(weights, 60).tolist() == [served["per_query"]["q"]] == [1.0]
    query_set.relevant = [np.isin(np.arange(12), [2])]
    assert RRFTable(query_set, ("m1", "m2"), k=1).per_query(weights, 60).tolist() == [0.0]
