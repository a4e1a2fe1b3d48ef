"""Fusion methods on small lists whose fused scores are worked out by hand in each test."""

from __future__ import annotations

import pytest

from domain.fusion import (
    RankedHit,
    borda,
    combmnz,
    combsum,
    parse_fusion,
    rrf,
    single,
    valid_choices,
    weighted_rrf,
)

# Dyadic scores keep the min-max arithmetic exact, so expected values compare with ==.
# m1: a 0.875, b 0.75, c 0.375      m2: b 0.75, d 0.5, a 0.25
LISTS = {
    "m1": [RankedHit("a", 0.875, 1), RankedHit("b", 0.75, 1), RankedHit("c", 0.375, 2)],
    "m2": [RankedHit("b", 0.75, 7), RankedHit("d", 0.5, 7), RankedHit("a", 0.25, 8)],
}
METHOD_NAMES = ["rrf", "weighted_rrf", "combsum", "combmnz", "borda", "single:m1", "single:m2"]


def scores(fused) -> dict[str, float]:
    return {h.id: h.score for h in fused}


def order(fused) -> list[str]:
    return [h.id for h in fused]


def test_rrf_k0_by_hand():
    # a: 1/1 + 1/3, b: 1/2 + 1/1, c: 1/3, d: 1/2
    fused = rrf(LISTS, k=0)
    assert order(fused) == ["b", "a", "d", "c"]
    assert scores(fused) == pytest.approx({"a": 4 / 3, "b": 1.5, "c": 1 / 3, "d": 0.5})


def test_rrf_default_k60():
    fused = rrf(LISTS)
    assert order(fused) == ["b", "a", "d", "c"]
    expected = {"a": 1 / 61 + 1 / 63, "b": 1 / 62 + 1 / 61, "c": 1 / 63, "d": 1 / 62}
    assert scores(fused) == pytest.approx(expected, rel=1e-12)


def test_contributions_record_rank_score_cluster_in_member_order():
    hit = {h.id: h for h in rrf(LISTS)}["a"]
    assert [(c.member, c.rank, c.score, c.cluster) for c in hit.contributions] == [
        ("m1", 1, 0.875, 1),
        ("m2", 3, 0.25, 8),
    ]
    assert hit.matched_members == 2 and hit.best_rank == 1
    assert hit.cluster("m2") == 8 and hit.cluster("m3") == -1
    assert {h.id: h for h in rrf(LISTS)}["d"].matched_members == 1


def test_weighted_rrf_by_hand():
    # w1 = 2, w2 = 1, k = 0 -> a: 2/1 + 1/3, b: 2/2 + 1/1, c: 2/3, d: 1/2
    fused = weighted_rrf(LISTS, {"m1": 2.0, "m2": 1.0}, k=0)
    assert order(fused) == ["a", "b", "c", "d"]
    assert scores(fused) == pytest.approx({"a": 7 / 3, "b": 2.0, "c": 2 / 3, "d": 0.5})


def test_weighted_rrf_needs_every_weight():
    with pytest.raises(ValueError, match="no weight for member 'm2'"):
        weighted_rrf(LISTS, {"m1": 1.0})
    with pytest.raises(ValueError, match="must be finite"):
        weighted_rrf(LISTS, {"m1": 1.0, "m2": float("nan")})


def test_combsum_by_hand():
    # m1 span 0.5: a 1.0, b 0.75, c 0.0;  m2 span 0.5: b 1.0, d 0.5, a 0.0
    fused = combsum(LISTS)
    assert order(fused) == ["b", "a", "d", "c"]
    assert scores(fused) == {"a": 1.0, "b": 1.75, "c": 0.0, "d": 0.5}


def test_combmnz_by_hand():
    fused = combmnz(LISTS)
    assert scores(fused) == {"a": 2.0, "b": 3.5, "c": 0.0, "d": 0.5}


def test_combmnz_rewards_agreement_where_combsum_ties():
    # m1 span 0.5: u 1, v 0.5, w 0;  m2: x 1, v 0.5, w 0 -> combsum u = x = v = 1.0
    lists = {
        "m1": [RankedHit("u", 0.75), RankedHit("v", 0.5), RankedHit("w", 0.25)],
        "m2": [RankedHit("x", 0.75), RankedHit("v", 0.5), RankedHit("w", 0.25)],
    }
    # tie on 1.0: best rank 1 (u, x by id) before v (best rank 2)
    assert order(combsum(lists)) == ["u", "x", "v", "w"]
    assert scores(combsum(lists)) == {"u": 1.0, "x": 1.0, "v": 1.0, "w": 0.0}
    assert order(combmnz(lists)) == ["v", "u", "x", "w"]
    assert scores(combmnz(lists))["v"] == 2.0


def test_minmax_degenerate_lists_normalize_to_one():
    lists = {"m1": [RankedHit("a", 0.3)], "m2": [RankedHit("b", 0.6), RankedHit("a", 0.6)]}
    assert scores(combsum(lists)) == {"a": 2.0, "b": 1.0}
    assert scores(combmnz(lists)) == {"a": 4.0, "b": 1.0}


def test_borda_default_depth_is_longest_list():
    # D = 3: rank 1 -> 1, rank 2 -> 2/3, rank 3 -> 1/3
    fused = borda(LISTS)
    assert order(fused) == ["b", "a", "d", "c"]
    assert scores(fused) == pytest.approx({"a": 4 / 3, "b": 5 / 3, "c": 1 / 3, "d": 2 / 3})


def test_borda_explicit_depth():
    # D = 4: rank 1 -> 1, rank 2 -> 3/4, rank 3 -> 1/2
    assert scores(borda(LISTS, depth=4)) == {"a": 1.5, "b": 1.75, "c": 0.5, "d": 0.75}
    with pytest.raises(ValueError, match="shorter than the longest list"):
        borda(LISTS, depth=2)


def test_borda_short_list_keeps_full_points_for_its_top_hit():
    lists = {
        "m1": [RankedHit("a", 0.9), RankedHit("b", 0.8), RankedHit("c", 0.7)],
        "m2": [RankedHit("z", 0.1)],
    }
    assert scores(borda(lists)) == pytest.approx({"a": 1.0, "z": 1.0, "b": 2 / 3, "c": 1 / 3})


def test_single_member_keeps_its_order_and_cosines():
    assert [(h.id, h.score) for h in single(LISTS, "m2")] == [("b", 0.75), ("d", 0.5), ("a", 0.25)]
    assert [c.member for h in single(LISTS, "m1") for c in h.contributions] == ["m1", "m1", "m1"]
    assert single(LISTS, "m3") == []


def test_ties_break_by_best_rank_then_id():
    # k = 0: z = 1/1, y = 1/1, e = 1/2 + 1/2 -> all 1.0
    lists = {
        "m1": [RankedHit("z", 0.9), RankedHit("e", 0.8)],
        "m2": [RankedHit("y", 0.9), RankedHit("e", 0.8)],
    }
    fused = rrf(lists, k=0)
    assert scores(fused) == {"z": 1.0, "y": 1.0, "e": 1.0}
    assert order(fused) == ["y", "z", "e"]
    # symmetric ranks: equal scores and equal best rank -> by id
    swapped = {
        "m1": [RankedHit("q", 0.9), RankedHit("p", 0.8)],
        "m2": [RankedHit("p", 0.9), RankedHit("q", 0.8)],
    }
    assert order(rrf(swapped)) == ["p", "q"]
    assert order(rrf(dict(reversed(list(swapped.items()))))) == ["p", "q"]


def test_disjoint_lists_interleave_by_rank():
    lists = {
        "m1": [RankedHit("a", 0.9), RankedHit("b", 0.8)],
        "m2": [RankedHit("c", 0.7), RankedHit("d", 0.6)],
    }
    assert order(rrf(lists)) == ["a", "c", "b", "d"]
    assert all(h.matched_members == 1 for h in rrf(lists))
    # combsum: a = c = 1.0 (best rank 1, by id), b = d = 0.0
    assert order(combsum(lists)) == ["a", "c", "b", "d"]


def test_duplicate_id_in_one_list_counts_once_at_its_best_rank():
    lists = {"m1": [RankedHit("a", 0.9), RankedHit("b", 0.8), RankedHit("a", 0.7)]}
    fused = rrf(lists, k=0)
    assert scores(fused) == {"a": 1.0, "b": 0.5}
    assert fused[0].contributions[0].rank == 1


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_one_member_empty(name):
    lists = {"m1": LISTS["m1"], "m2": []}
    fused = parse_fusion(name, ["m1", "m2"]).fuse(lists)
    expected = [] if name == "single:m2" else ["a", "b", "c"]
    assert order(fused) == expected


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_all_empty(name):
    method = parse_fusion(name, ["m1", "m2"])
    assert method.fuse({"m1": [], "m2": []}) == []
    assert method.fuse({}) == []


def test_parse_fusion_canonical_names_and_weights():
    method = parse_fusion(" RRF ", ["m1", "m2"], k=10)
    assert (method.name, method.kind, method.k) == ("rrf", "rrf", 10)
    weighted = parse_fusion("weighted_rrf", ["m1", "m2"], weights={"m1": 2.0, "m2": 1.0}, k=0)
    assert scores(weighted.fuse(LISTS)) == pytest.approx({"a": 7 / 3, "b": 2.0, "c": 2 / 3, "d": 0.5})
    assert parse_fusion("weighted_rrf", ["m1", "m2"]).weights == {"m1": 1.0, "m2": 1.0}
    solo = parse_fusion("Single:m2", ["m1", "m2"])
    assert (solo.name, solo.member, solo.members_needed(["m1", "m2"])) == ("single:m2", "m2", ("m2",))
    assert parse_fusion("combsum", ["m1", "m2"]).members_needed(["m1", "m2"]) == ("m1", "m2")
    assert order(parse_fusion("borda", ["m1", "m2"]).fuse(LISTS, depth=4)) == ["b", "a", "d", "c"]


def test_parse_fusion_unknown_names_list_the_choices():
    with pytest.raises(ValueError) as info:
        parse_fusion("rrff", ["m1", "m2"])
    message = str(info.value)
    assert "'rrff'" in message and "single:m2" in message and "combmnz" in message
    with pytest.raises(ValueError, match=r"unknown member 'm9'.*\['m1', 'm2'\]"):
        parse_fusion("single:m9", ["m1", "m2"])
    with pytest.raises(ValueError, match="unknown fusion ''"):
        parse_fusion("", ["m1"])
    with pytest.raises(ValueError, match="rrf k"):
        parse_fusion("rrf", ["m1"], k=-1)
    assert valid_choices(["m1"]) == ["rrf", "weighted_rrf", "combsum", "combmnz", "borda", "single:m1"]


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_a_limit_builds_the_head_of_the_whole_fusion(name):
    """``limit`` n gives exactly the first n hits of the whole fused list, evidence included."""
    rng = __import__("random").Random(name)
    ids = [f"p{i}" for i in range(40)]
    lists = {
        m: [RankedHit(i, round(rng.random(), 3), rng.randrange(4)) for i in rng.sample(ids, 25)]
        for m in ("m1", "m2")
    }
    lists["m1"].append(lists["m1"][3])  # a repeat in one list keeps its first rank
    method = parse_fusion(name, ["m1", "m2"])
    whole = method.fuse(lists, depth=30)
    for limit in (0, 1, 10, len(whole), len(whole) + 5):
        assert method.fuse(lists, depth=30, limit=limit) == whole[:limit]
