"""Image query expansion offline: the image->image set ranked as search ranks an expanded image query.

Search expands an image query (no text) with the first round's ``neighbours`` top fused hits
(:func:`domain.query_vectors.expanded_query_vector`) and runs every member again with the expanded
vectors; this module does the same over a suite's gallery, with the same fusion code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

from domain.bundle import Bundle
from domain.lexical import ensemble_weights
from domain.query_vectors import EXPANSION_NEIGHBOURS, expanded_query_vector, image_query_vector
from training.retrieval import QuerySet, fused_rows, fusion_function, query_lists, score_system, top_k
from training.suite import Suite

EXPANSION = "+expansion"  # system name suffix: image queries expanded with their fused neighbours


def expanded_image_set(
    suite: Suite,
    fuse: Callable,
    colour_dims: Mapping[str, int],
    neighbours: int = EXPANSION_NEIGHBOURS,
) -> QuerySet:
    """The suite's image set with every member's rankings redone for the expanded query vectors.

    Each query's neighbours are the first ``neighbours`` hits of ``fuse`` over its first-round lists
    (the query item itself is never among them: the rankings leave it out).
    """
    image_set, rows = suite.image_set
    members = [m for m in image_set.rankings if m in suite.vectors]
    queries = {m: np.empty((len(rows), suite.vectors[m].shape[1]), np.float32) for m in members}
    for q, lists in enumerate(query_lists(image_set, None)):
        top = fused_rows(fuse(lists), neighbours)
        for m in members:
            channel = colour_dims.get(m, 0)
            query = image_query_vector(suite.vectors[m][rows[q]], channel)
            queries[m][q] = expanded_query_vector(query, suite.vectors[m][top], channel)
    expanded = QuerySet(image_set.name, image_set.keys, image_set.relevant)
    for m in members:
        expanded.rankings[m] = top_k(queries[m], suite.vectors[m], suite.depth, exclude=rows)
    return expanded


def default_fusion(bundle: Bundle, depth: int) -> Callable:
    """The bundle's default fusion over its whole ensemble, as search applies it."""
    return fusion_function(bundle.fusion.method, ensemble_weights(bundle), bundle.fusion.rrf_k, depth)


def served_image_queries(suite: Suite, bundle: Bundle, neighbours: int = EXPANSION_NEIGHBOURS) -> Suite:
    """The suite with its image set as search serves it: each query expanded with the first
    ``neighbours`` hits of the bundle's default fusion (the suite itself when ``neighbours`` is 0)."""
    image_set, rows = suite.image_set
    if neighbours <= 0 or not image_set.rankings:
        return suite
    colour_dims = {m.name: m.colour_dims for m in bundle.members}
    expanded = expanded_image_set(suite, default_fusion(bundle, suite.depth), colour_dims, neighbours)
    return dataclasses.replace(suite, image_set=(expanded, rows))


def score_expansion(
    suite: Suite, bundle: Bundle, neighbours: int = EXPANSION_NEIGHBOURS
) -> dict[str, float | dict[str, float]]:
    """Scores of the bundle's default fusion on the image set with served (expanded) queries."""
    served = served_image_queries(suite, bundle, neighbours)
    return score_system(served.image_set[0], default_fusion(bundle, suite.depth), excluded_self=True)


__all__ = ["EXPANSION", "default_fusion", "expanded_image_set", "score_expansion", "served_image_queries"]
