"""An evaluation suite over one gallery: query sets, every member's rankings, every fusion's scores.

Used on the validation split while building a bundle (fusion weights, admission) and on the test
split by ``training.evaluate``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from domain.catalog import Product
from domain.query_vectors import image_query_vector
from training.data.images import Pixels
from training.queries import (
    brand_queries,
    category_queries,
    colour_type_queries,
    image_queries,
    out_of_catalog_queries,
    shopper_queries,
)
from training.retrieval import (
    FUSED_METHODS,
    QuerySet,
    embed_images,
    embed_texts,
    fusion_function,
    score_system,
    top_k,
)

COLOUR_TYPE_MIN_ITEMS = 5  # a {colour, type} pair needs this many gallery items to be a query


@dataclass
class MemberView:
    """What evaluation needs from one member."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    pixels: Pixels
    colour_dims: int = 0  # trailing colour-channel dimensions, left out of image queries


@dataclass
class Suite:
    """Text->image sets (per category field, shopper, colour+type and brand queries) and one image->image
    set over ``gallery``; ``out_of_catalog`` queries have nothing relevant (scored for no-good-match
    only, never in the ranking tables)."""

    gallery: np.ndarray
    text_sets: list[tuple[QuerySet, list[str]]]
    image_set: tuple[QuerySet, np.ndarray]
    depth: int
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    out_of_catalog: tuple[QuerySet, list[str]] | None = None
    documents: list[frozenset[str]] = field(default_factory=list)  # lexical terms per gallery item

    @property
    def ranked_text_sets(self) -> list[tuple[QuerySet, list[str]]]:
        """Every text set members rank, the out-of-catalog one included."""
        return self.text_sets + ([self.out_of_catalog] if self.out_of_catalog else [])

    @property
    def query_sets(self) -> list[QuerySet]:
        """Every query set, text ones first."""
        return [qs for qs, _ in self.text_sets] + [self.image_set[0]]


def make_suite(
    products: Sequence[Product],
    gallery: np.ndarray,
    fields: Sequence[str] = ("articleType", "subCategory", "masterCategory"),
    min_items: int = 10,
    image_queries_max: int = 1000,
    depth: int = 100,
    side: str = "",
) -> Suite:
    """Query sets over the gallery positions of ``products``; with ``side`` (val/test) also brand
    queries and that side's out-of-catalog queries."""
    items = [products[i] for i in gallery]
    text_sets = [category_queries(items, f, min_items) for f in fields]
    text_sets.append(shopper_queries(items, min_items))
    text_sets.append(colour_type_queries(items, COLOUR_TYPE_MIN_ITEMS))
    if side:
        text_sets.append(brand_queries(items))
    ooc = out_of_catalog_queries(side, len(items)) if side else None
    return Suite(gallery, text_sets, image_queries(items, image_queries_max), depth, out_of_catalog=ooc)


def rank_member(suite: Suite, view: MemberView, device: torch.device) -> np.ndarray:
    """Embed the gallery with one member and store its top-``depth`` rankings in every query set."""
    view.model.eval()
    gallery_vectors = embed_images(view.model, view.pixels, suite.gallery, device)
    suite.vectors[view.name] = gallery_vectors
    for query_set, texts in suite.ranked_text_sets:
        if texts:
            query_set.rankings[view.name] = top_k(
                embed_texts(view.model, view.tokenizer, texts, device), gallery_vectors, suite.depth
            )
    image_set, rows = suite.image_set
    if len(rows):
        image_set.rankings[view.name] = top_k(
            image_query_vector(gallery_vectors[rows], view.colour_dims),
            gallery_vectors,
            suite.depth,
            exclude=rows,
        )
    return gallery_vectors


def systems(members: Sequence[str], methods: Sequence[str] = FUSED_METHODS) -> list[str]:
    """System names: every single member, then every fused method."""
    return [f"single:{m}" for m in members] + list(methods)


def score_suite(
    suite: Suite,
    names: Sequence[str],
    weights: Mapping[str, float],
    rrf_k: float,
    clusters: Mapping[str, np.ndarray] | None = None,
    rerank: bool = False,
) -> dict[str, dict[str, dict]]:
    """``{system: {query set name: scores}}`` for the given systems (optionally cluster re-ranked)."""
    out: dict[str, dict[str, dict]] = {}
    image_set = suite.image_set[0]
    for name in names:
        fuse = fusion_function(name, weights, rrf_k, suite.depth)
        out[name] = {
            qs.name: score_system(qs, fuse, clusters, rerank, excluded_self=qs is image_set)
            for qs in suite.query_sets
            if qs.keys and qs.rankings
        }
    return out


OBJECTIVE_SETS = ("text->image articleType", "image->image articleType")


def objective(scores: Mapping[str, dict]) -> float:
    """Validation objective: mean of text->image articleType macro mAP@10 and image->image mAP@10."""
    parts = [scores[k]["macro"] for k in OBJECTIVE_SETS if k in scores]
    return float(np.mean(parts)) if parts else 0.0
