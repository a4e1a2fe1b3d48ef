"""Store-side rrf: when it is taken, and how its hits become a page (plain functions)."""

from __future__ import annotations

import dataclasses

import pytest

from domain.fusion import parse_fusion
from services.search.plan import Plan
from services.search.store_fusion import can_fuse_in_store, page_of
from services.storage.port import ScoredPoint

MEMBERS = ("m1", "m2", "m3")
PLAN = Plan(members=MEMBERS, method=parse_fusion("rrf", MEMBERS), top_k=2, offset=0, depth=100, filters={})


def point(key: str, score: float) -> ScoredPoint:
    return ScoredPoint(
        f"id-{key}", score, {"id": f"id-{key}", "color": key.upper(), "cluster": {"m1": 1}}, key
    )


@pytest.mark.parametrize(
    ("change", "taken"),
    [
        ({}, True),
        ({"filters": {"gender": ("Women",)}, "offset": 20, "min_score": 0.01}, True),
        ({"explain": True}, False),
        ({"cluster_rerank": True}, False),
        ({"max_per_cluster": 2}, False),
        ({"mmr_lambda": 0.5}, False),
        ({"method": parse_fusion("weighted_rrf", MEMBERS)}, False),
        ({"method": parse_fusion("combsum", MEMBERS)}, False),
        ({"method": parse_fusion("rrf", MEMBERS, k=60.5)}, False),
    ],
)
def test_only_plain_rrf_without_member_evidence_is_fused_by_the_store(change, taken):
    assert can_fuse_in_store(dataclasses.replace(PLAN, **change), enabled=True) is taken
    assert can_fuse_in_store(dataclasses.replace(PLAN, **change), enabled=False) is False


def test_page_orders_ties_by_key_drops_the_query_item_and_low_scores():
    points = [point("c", 0.03), point("b", 0.05), point("a", 0.03), point("q", 0.09), point("d", 0.01)]
    first = page_of(points, PLAN, exclude_key="q")
    assert [(h.id, h.score) for h in first] == [("id-b", 0.05), ("id-a", 0.03)]
    assert first[0].attributes == {"id": "id-b", "color": "B"}  # the cluster map stays internal
    assert first[0].matched_members == 0 and first[0].members == ()
    second = page_of(points, dataclasses.replace(PLAN, offset=2), exclude_key="q")
    assert [h.id for h in second] == ["id-c", "id-d"]
    assert [h.id for h in page_of(points, dataclasses.replace(PLAN, offset=2, min_score=0.02))] == [
        "id-a",
        "id-c",
    ]
    assert page_of([], PLAN) == []
