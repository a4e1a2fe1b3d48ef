"""Losses, samplers, metrics, k-means and fusion-weight search on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from domain.fusion import RankedHit, weighted_rrf
from training.config import MemberConfig, config_from_dict
from training.ensemble import assign_clusters, coordinate_search, decide_admission, kmeans_centroids
from training.losses import clip_loss, parse_loss, supcon_loss, triplet_loss
from training.metrics import average_precision, average_precision_at_k, macro_micro, recall_at_k
from training.retrieval import QuerySet, fusion_function, query_lists, score_system, top_k
from training.samplers import PKBatches, RandomBatches


def test_clip_loss_matches_cross_entropy_when_captions_are_distinct():
    torch.manual_seed(0)
    image, text = F.normalize(torch.randn(6, 8), dim=-1), F.normalize(torch.randn(6, 8), dim=-1)
    scale = torch.tensor(10.0)
    logits = scale * image @ text.t()
    expected = 0.5 * (F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(logits.t(), torch.arange(6)))
    assert torch.allclose(clip_loss(image, text, scale, torch.arange(6)), expected)


def test_clip_loss_treats_equal_captions_as_positives():
    image = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), dim=-1)
    text = torch.tensor([[1.0, 0.0], [0.8, 0.6]])  # paired with caption id 7 both: positives of each other
    logits = 3.0 * image @ text.t()
    half = torch.full((2, 2), 0.5)
    expected = -0.5 * (
        (half * logits.log_softmax(1)).sum(1).mean() + (half * logits.t().log_softmax(1)).sum(1).mean()
    )
    shared = clip_loss(image, text, torch.tensor(3.0), torch.tensor([7, 7]))
    assert torch.allclose(shared, expected)
    assert not torch.allclose(shared, clip_loss(image, text, torch.tensor(3.0), torch.tensor([1, 2])))


def test_supcon_and_triplet_on_separated_classes():
    good = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    bad = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert supcon_loss(good, labels) < supcon_loss(bad, labels)
    assert float(triplet_loss(good, labels, margin=0.2)) == 0.0
    assert math.isclose(float(triplet_loss(bad, labels, margin=0.2)), 1.2, rel_tol=1e-6)
    assert float(supcon_loss(good, torch.tensor([0, 1, 2, 3]))) == 0.0  # no positives at all


def test_loss_and_config_errors_list_choices():
    assert parse_loss("clip+supcon+ce") == ("supcon", "ce")
    with pytest.raises(ValueError, match="valid"):
        parse_loss("infonce")
    with pytest.raises(ValueError, match="valid"):
        MemberConfig(name="x", model={"embed_dim": 8}, sampler="balanced").validate()
    with pytest.raises(ValueError, match="unknown keys"):
        config_from_dict({"members": [{"name": "a", "model": {"embed_dim": 8}, "lr_max": 1}]})


def test_pk_batches_hold_p_classes_of_k_items():
    labels = np.repeat(np.arange(5), [10, 10, 10, 3, 2])
    positions = np.arange(100, 100 + len(labels))
    sampler = PKBatches(positions, labels, p=3, k=4, seed=0)
    lookup = dict(zip(positions, labels, strict=True))
    batches = list(sampler.epoch(0, 20))
    assert len(batches) == 20 and all(len(b) == 12 for b in batches)
    for batch in batches:
        classes = [lookup[p] for p in batch]
        assert len(set(classes)) == 3
        assert all(classes[i * 4 : (i + 1) * 4].count(classes[i * 4]) == 4 for i in range(3))
    assert [b.tolist() for b in sampler.epoch(0, 20)] == [b.tolist() for b in batches], "seeded"
    with pytest.raises(ValueError, match="exceeds"):
        PKBatches(positions, labels, p=6, k=2)


def test_random_batches_cover_an_epoch():
    batches = list(RandomBatches(range(10), 5, seed=1).epoch(0, 2))
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))


def test_average_precision_hand_cases():
    # relevant at ranks 1 and 3, 2 relevant in total: (1/1 + 2/3) / 2
    assert math.isclose(average_precision_at_k([1, 0, 1, 0], 2, 10), (1 + 2 / 3) / 2)
    # 20 relevant items, first 10 hits all relevant -> 1.0 (normalized by min(R, k))
    assert average_precision_at_k([1] * 10, 20, 10) == 1.0
    assert average_precision_at_k([0, 0, 1], 1, 2) == 0.0
    assert math.isclose(average_precision([0, 1], 4), 0.5 / 4)
    assert recall_at_k([0, 0, 1], 2) == 0.0 and recall_at_k([0, 0, 1], 3) == 1.0
    assert macro_micro({"a": 1.0, "b": 0.0}, {"a": 3, "b": 1}) == (0.5, 0.75)


def test_kmeans_finds_separated_clusters_and_normalizes():
    rng = np.random.default_rng(0)
    centres = np.eye(4)[:3]
    points = np.concatenate([c + 0.05 * rng.standard_normal((30, 4)) for c in centres])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    centroids = kmeans_centroids(points, 3, seed=0)
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    labels = assign_clusters(points, centroids)
    assert [len(set(labels[i * 30 : (i + 1) * 30])) for i in range(3)] == [1, 1, 1]
    assert len(set(labels)) == 3
    assert kmeans_centroids(points[:2], 10).shape == (2, 4)


def test_coordinate_search_finds_the_best_grid_point():
    target = {"a": 2.0, "b": 0.0, "c": 1.0}

    def score(weights):
        return -sum((weights[m] - target[m]) ** 2 for m in target)

    weights, best = coordinate_search(["a", "b", "c"], (0.0, 1.0, 2.0), score)
    assert weights == target and best == 0.0


def test_evaluation_fusion_is_the_search_services_fusion():
    # two members, gallery of 4 rows; member scores chosen by hand
    query_set = QuerySet("t", ["q"], [np.array([True, False, True, False])])
    query_set.rankings["m1"] = (np.array([[0, 1, 2]]), np.array([[0.9, 0.8, 0.1]]))
    query_set.rankings["m2"] = (np.array([[1, 2, 0]]), np.array([[0.7, 0.6, 0.5]]))
    weights = {"m1": 2.0, "m2": 1.0}
    fused = weighted_rrf(
        {
            "m1": [RankedHit("0", 0.9), RankedHit("1", 0.8), RankedHit("2", 0.1)],
            "m2": [RankedHit("1", 0.7), RankedHit("2", 0.6), RankedHit("0", 0.5)],
        },
        weights,
        60,
    )
    scores = score_system(query_set, fusion_function("weighted_rrf", weights, 60, 3))
    relevant = [int(h.id) in (0, 2) for h in fused]
    assert scores["macro"] == average_precision_at_k(relevant, 2, 10)
    assert [h.id for h in fused][0] == "0"
    with pytest.raises(ValueError, match="valid"):
        fusion_function("median", weights, 60, 3)


def test_query_lists_are_built_once_per_cluster_map_and_member_set():
    query_set = QuerySet("t", ["q0", "q1"], [np.array([True, False, True]), np.array([False, True, False])])
    query_set.rankings["m1"] = (np.array([[0, 1], [1, 2]]), np.array([[0.9, 0.8], [0.7, 0.1]]))
    clusters = {"m1": np.array([5, 6, 7])}
    plain, with_clusters = query_lists(query_set, None), query_lists(query_set, clusters)
    assert query_lists(query_set, None) is plain and query_lists(query_set, clusters) is with_clusters
    assert plain[1]["m1"] == [RankedHit("1", 0.7, -1), RankedHit("2", 0.1, -1)]
    assert [h.cluster for h in with_clusters[0]["m1"]] == [5, 6]
    before = score_system(query_set, fusion_function("single:m1", {"m1": 1.0}, 60, 2))
    query_set.rankings["m2"] = (np.array([[2, 0], [1, 0]]), np.array([[0.9, 0.5], [0.8, 0.2]]))
    assert set(query_lists(query_set, None)[0]) == {"m1", "m2"}  # a newly ranked member is seen
    weights = {"m1": 1.0, "m2": 1.0}
    assert score_system(query_set, fusion_function("single:m1", weights, 60, 2)) == before
    assert score_system(query_set, fusion_function("rrf", weights, 60, 2))["per_query"]["q0"] == 1.0


def test_top_k_orders_and_excludes_self():
    gallery = np.eye(3, dtype=np.float32)
    indices, scores = top_k(gallery, gallery, 2, exclude=np.arange(3))
    assert (indices != np.arange(3)[:, None]).all()
    assert np.all(scores[:, 0] >= scores[:, 1])


def test_admission_needs_a_fused_gain_unless_always():
    table = {"single:a": 0.70, "single:b": 0.60, "rrf": 0.69, "borda+clusters": 0.68}
    assert decide_admission(table, ["a", "b"]) == ("single:a", "rrf", False, False)
    assert decide_admission(table, ["a", "b"], "always") == ("single:a", "rrf", False, True)
    tie = table | {"rrf": 0.70}
    assert decide_admission(tie, ["a", "b"]) == ("single:a", "rrf", True, True)
    assert decide_admission({"single:a": 0.5}, ["a"], "always")[3] is False


def test_weighted_rrf_wins_a_tie_on_val():
    table = {"single:a": 0.70, "single:b": 0.60, "combmnz": 0.7513, "weighted_rrf": 0.7507, "rrf": 0.74}
    assert decide_admission(table, ["a", "b"])[1] == "weighted_rrf"
    assert decide_admission(table | {"combmnz": 0.76}, ["a", "b"])[1] == "combmnz"
