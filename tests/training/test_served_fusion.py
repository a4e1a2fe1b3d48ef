"""The default fusion is decided on val with the lexical member in it, as search serves it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from domain.lexical import LEXICAL_MEMBER
from training.queries import BRAND_SET
from training.retrieval import QuerySet
from training.served_fusion import choose_served_fusion, served_objective
from training.suite import Suite

GALLERY = 60
TYPES = 6  # item i has type i % TYPES


def ranking(order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One query's ranked gallery rows with descending scores, as (1, n) arrays."""
    return order[None, :], np.linspace(1.0, 0.0, len(order))[None, :]


def stack(rankings: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-query rankings as the (queries, n) arrays a query set holds."""
    return np.vstack([r[0] for r in rankings]), np.vstack([r[1] for r in rankings])


def perfect(target: int) -> np.ndarray:
    """Gallery rows of type ``target`` first, then the rest."""
    rows = np.arange(GALLERY)
    return np.concatenate([rows[rows % TYPES == target], rows[rows % TYPES != target]])


def shuffled(rng: np.random.Generator) -> np.ndarray:
    """A ranking that knows nothing."""
    return rng.permutation(GALLERY)


def type_set(name: str, rankers: dict[str, Callable[[int], np.ndarray]]) -> QuerySet:
    """One query per type; ``rankers[member](t)`` gives that member's ranking for type ``t``."""
    relevant = [np.arange(GALLERY) % TYPES == t for t in range(TYPES)]
    qs = QuerySet(name, [f"type {t}" for t in range(TYPES)], relevant)
    for member, rank in rankers.items():
        qs.rankings[member] = stack([ranking(rank(t)) for t in range(TYPES)])
    return qs


def suite(
    rankers: dict[str, Callable[[int], np.ndarray]],
    image_rankers: dict[str, Callable[[int], np.ndarray]],
    lexical_knows: bool,
) -> Suite:
    """A val suite: category prompts and brand queries (ranked by the dense members and the lexical
    member) and image queries (dense members only)."""
    rng = np.random.default_rng(0)
    lexical = (lambda t: perfect(t)) if lexical_knows else (lambda t: shuffled(rng))
    category = type_set("text->image articleType", {**rankers, LEXICAL_MEMBER: lexical})
    brand = type_set(BRAND_SET, {**rankers, LEXICAL_MEMBER: lexical})
    image = type_set("image->image articleType", image_rankers)
    rows = np.arange(TYPES)  # the query item of type t is gallery row t
    return Suite(
        np.arange(GALLERY),
        [(category, list(category.keys)), (brand, list(brand.keys))],
        (image, rows),
        depth=GALLERY,
    )


def test_plain_rrf_gives_way_to_weighted_rrf_when_the_lexical_member_knows_the_answer():
    rng = np.random.default_rng(1)
    dense = {"m1": lambda t: shuffled(rng), "m2": lambda t: shuffled(rng)}
    val = suite(dense, {"m1": perfect, "m2": perfect}, lexical_knows=True)
    method, lexical_weight, report = choose_served_fusion(val, "rrf", {"m1": 1.0, "m2": 1.0}, 60)
    assert method == "weighted_rrf"
    assert lexical_weight == report["weighted_rrf"]["lexical_weight"] > 1.0  # outvotes two members
    assert report["weighted_rrf"]["objective"] > report["rrf"]["objective"]
    # plain RRF gives the lexical member one vote of three, whatever weight it is handed
    assert report["rrf"]["objective"] == served_objective(
        val, "rrf", {"m1": 1, "m2": 1, LEXICAL_MEMBER: 16}, 60
    )


def test_a_method_that_leads_with_the_lexical_member_in_is_kept():
    rng = np.random.default_rng(2)
    # m2 knows the types, m1 does not, but val's weights trust m1: weighted RRF ranks worse
    dense = {"m1": lambda t: shuffled(rng), "m2": perfect}
    val = suite(dense, dense, lexical_knows=False)
    method, _, report = choose_served_fusion(val, "rrf", {"m1": 3.0, "m2": 0.5}, 60)
    assert method == "rrf"
    assert report["rrf"]["objective"] > report["weighted_rrf"]["objective"] + 0.003


def test_one_member_bundles_and_weighted_rrf_are_not_second_guessed():
    rng = np.random.default_rng(3)
    dense = {"m1": lambda t: shuffled(rng), "m2": perfect}
    val = suite(dense, dense, lexical_knows=True)
    for method in ("weighted_rrf", "single:m2"):
        chosen, _, report = choose_served_fusion(val, method, {"m1": 1.0, "m2": 1.0}, 60)
        assert chosen == method and list(report) == [method]
