"""Offline image query expansion (training.expansion) ranks exactly as the search service does."""

from __future__ import annotations

import numpy as np

from domain.lexical import ensemble_weights
from domain.query_vectors import image_query_vector
from services.common.config import SearchConfig, StoreConfig
from services.search.core import SearchCore
from services.search.model import SearchOptions, SimilarQuery
from services.storage.factory import open_store
from tests.support.search import ALIAS, SyntheticCatalog, SyntheticEmbedder, search_bundle
from training.expansion import expanded_image_set
from training.retrieval import QuerySet, fused_rows, fusion_function, query_lists, top_k
from training.suite import Suite

DEPTH, NEIGHBOURS, PAGE = 30, 3, 10


def synthetic_suite(catalog: SyntheticCatalog, rows: np.ndarray) -> Suite:
    """Every item in the gallery; ``rows`` are the image queries, relevant = same concept."""
    ids = [i.id for i in catalog.items]
    concepts = np.array([i.concept for i in catalog.items])
    image_set = QuerySet(
        "image->image concept", [ids[r] for r in rows], [concepts == concepts[r] for r in rows]
    )
    vectors = {
        m: np.stack([catalog.vectors[i][m] for i in ids]).astype(np.float32) for m in catalog.directions
    }
    for m, gallery in vectors.items():
        image_set.rankings[m] = top_k(image_query_vector(gallery[rows], 0), gallery, DEPTH, exclude=rows)
    return Suite(np.arange(len(ids)), [], (image_set, rows), DEPTH, vectors=vectors)


async def test_offline_expansion_ranks_as_more_like_this_serves(tmp_path):
    catalog = SyntheticCatalog(seed=3)
    rows = np.arange(0, len(catalog.items), 4)
    suite = synthetic_suite(catalog, rows)
    bundle = search_bundle("weighted_rrf")
    fuse = fusion_function("weighted_rrf", ensemble_weights(bundle), 60, DEPTH)
    expanded = expanded_image_set(suite, fuse, {}, NEIGHBOURS)
    store = open_store(StoreConfig(backend="edge", path=str(tmp_path)))
    catalog.load(store)
    cfg = SearchConfig(min_candidates=DEPTH, store_rrf=False, image_expansion=NEIGHBOURS)
    core = SearchCore(cfg, store, bundle, SyntheticEmbedder(catalog), ALIAS)
    ids = [i.id for i in catalog.items]
    changed = 0
    for q, lists in enumerate(query_lists(expanded, None)):
        offline = [ids[r] for r in fused_rows(fuse(lists), PAGE)]
        served = await core.more_like_this(SimilarQuery(ids[rows[q]], options=SearchOptions(top_k=PAGE)))
        assert [h.id for h in served.hits] == offline, ids[rows[q]]
        plain = [ids[r] for r in fused_rows(fuse(query_lists(suite.image_set[0], None)[q]), PAGE)]
        changed += plain != offline
    store.close()
    assert changed, "expansion reorders some pages"
