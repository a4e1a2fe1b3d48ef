"""The bundle's default fusion, decided on val as search serves it: with the lexical member in it.

The build picks its fusion method on the dense members alone (``training.ensemble``). The lexical
member joins later, in calibration, and only weighted RRF gives it a learned weight; in the other
methods it is one equal vote among the members. So a method that led by a hair without it can
serve far worse with it: a fresh build that chose plain RRF by 0.003 on the dense objective
served 0.94 text->image articleType mAP@10 on test where weighted RRF with the learned lexical
weight served 0.99. :func:`choose_served_fusion` scores the build's method and weighted RRF on
the same val objective with the lexical member in, each at its best lexical weight, and keeps
the better one (weighted RRF on a tie).
"""

from __future__ import annotations

from collections.abc import Mapping

from domain.lexical import LEXICAL_MEMBER
from training.calibration import choose_lexical_weight
from training.ensemble import FUSION_TIE, WEIGHTED
from training.retrieval import FUSED_METHODS, fusion_function, score_system
from training.suite import OBJECTIVE_SETS, Suite, objective


def served_objective(suite: Suite, method: str, weights: Mapping[str, float], rrf_k: float) -> float:
    """The build's val objective (``training.suite.objective``) for ``method`` over every member
    ranked in ``suite``, the lexical member included at its weight in ``weights``."""
    fuse = fusion_function(method, weights, rrf_k, suite.depth)
    image_set = suite.image_set[0]
    return objective(
        {
            qs.name: score_system(qs, fuse, excluded_self=qs is image_set)
            for qs in suite.query_sets
            if qs.name in OBJECTIVE_SETS and qs.keys and qs.rankings
        }
    )


def choose_served_fusion(
    suite: Suite, method: str, weights: Mapping[str, float], rrf_k: float
) -> tuple[str, float, dict]:
    """(method, lexical weight, report): the build's fused ``method`` or weighted RRF, whichever
    scores the higher val objective with the lexical member (ranked in ``suite``) in the fusion.

    ``weights`` are the dense members' learned weights. A bundle that serves one member
    (``single:<name>``) keeps it. The report lists each candidate's lexical weight, objective and
    lexical weight search.
    """
    candidates = [method] + ([WEIGHTED] if method in FUSED_METHODS and method != WEIGHTED else [])
    report: dict[str, dict] = {}
    for candidate in candidates:
        lexical_weight, search = choose_lexical_weight(suite, candidate, weights, rrf_k)
        score = served_objective(suite, candidate, {**weights, LEXICAL_MEMBER: lexical_weight}, rrf_k)
        report[candidate] = {
            "lexical_weight": lexical_weight,
            "objective": score,
            "lexical_weight_search": search,
        }
    best = max(candidates, key=lambda c: report[c]["objective"])
    if WEIGHTED in report and report[WEIGHTED]["objective"] >= report[best]["objective"] - FUSION_TIE:
        best = WEIGHTED
    return best, report[best]["lexical_weight"], report


__all__ = ["choose_served_fusion", "served_objective"]
