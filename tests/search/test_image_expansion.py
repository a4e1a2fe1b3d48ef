"""Image query expansion (services.search.expansion) on real stores: the second round runs with
exactly the vectors that domain.query_vectors.expanded_query_vector makes of the first round's hits."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest

from domain.query_vectors import expanded_query_vector
from services.common.config import SearchConfig
from services.common.deadlines import request_deadline
from services.search.core import SearchCore
from services.search.model import SearchOptions, SearchQuery, SimilarQuery
from services.storage.port import VectorStore
from tests.support.search import (
    ALIAS,
    COLLECTION,
    FaultyStore,
    SyntheticCatalog,
    SyntheticEmbedder,
    image_of,
    search_bundle,
    synthetic_store,
)

NEIGHBOURS = 4
# Python fusion in both rounds (no store RRF), so both cores fuse first rounds with the same code
ON = SearchConfig(min_candidates=30, store_rrf=False, image_expansion=NEIGHBOURS)
OFF = dataclasses.replace(ON, image_expansion=0)
CATALOG = SyntheticCatalog()


@pytest.fixture(scope="module", params=["edge", "qdrant"])
def store(request, tmp_path_factory) -> Iterator[VectorStore]:
    """The synthetic catalog loaded once per backend."""
    s = synthetic_store(request.param, tmp_path_factory, CATALOG)
    yield s
    s.close()


def core(store: VectorStore, cfg: SearchConfig) -> SearchCore:
    return SearchCore(cfg, store, search_bundle(), SyntheticEmbedder(CATALOG), ALIAS)


def expanded(store: VectorStore, query: dict[str, np.ndarray], neighbour_ids: list[str]) -> dict:
    """Each member's query vector expanded with the stored vectors of ``neighbour_ids``."""
    points = store.retrieve(COLLECTION, neighbour_ids, with_vectors=True)
    assert [p.id for p in points] == neighbour_ids
    return {
        m: expanded_query_vector(v, np.stack([p.vectors[m] for p in points]), 0) for m, v in query.items()
    }


def page(result) -> list[tuple[str, float]]:
    return [(h.id, round(h.score, 5)) for h in result.hits]


@pytest.mark.parametrize("filters", [{}, {"gender": "Men"}])
async def test_an_image_search_runs_again_with_its_neighbours_mean(store, filters):
    image = image_of("shirt-red-0")
    options = SearchOptions(top_k=10, filters=filters, fusion="weighted_rrf")
    plain = await core(store, OFF).search(SearchQuery(image=image, options=options))
    neighbours = [h.id for h in plain.hits[:NEIGHBOURS]]
    query = CATALOG.vectors["shirt-red-0"]
    want = await core(store, OFF).search_vectors(expanded(store, query, neighbours), options)
    got = await core(store, ON).search(SearchQuery(image=image, options=options))
    assert page(got) == page(want) and len(got.hits) == 10
    assert page(got) != page(plain), "the expanded query ranks differently"
    assert all(h.attributes["gender"] == "Men" for h in got.hits) or not filters


async def test_pages_of_an_image_query_concatenate_to_its_top_hits(store):
    def query(offset: int, top_k: int) -> SearchQuery:
        options = SearchOptions(top_k=top_k, offset=offset, fusion="weighted_rrf")
        return SearchQuery(image=image_of("dress-blue-2"), options=options)

    search = core(store, ON)
    whole = [h.id for h in (await search.search(query(0, 24))).hits]
    pages = [h.id for offset in range(0, 24, 6) for h in (await search.search(query(offset, 6))).hits]
    assert pages == whole and len(set(whole)) == 24


async def test_more_like_this_never_counts_the_item_among_its_neighbours(store):
    options = SearchOptions(top_k=8, fusion="weighted_rrf")
    plain = await core(store, OFF).more_like_this(SimilarQuery("jeans-blue-1", options=options))
    neighbours = [h.id for h in plain.hits[:NEIGHBOURS]]
    assert "jeans-blue-1" not in neighbours
    vectors = expanded(store, CATALOG.vectors["jeans-blue-1"], neighbours)
    wider = dataclasses.replace(options, top_k=9)
    want = [h for h in (await core(store, OFF).search_vectors(vectors, wider)).hits if h.id != "jeans-blue-1"]
    got = await core(store, ON).more_like_this(SimilarQuery("jeans-blue-1", options=options))
    assert page(got) == [(h.id, round(h.score, 5)) for h in want[:8]]


@pytest.mark.parametrize(
    "query",
    [SearchQuery(text="red dress"), SearchQuery(text="red dress", image=image_of("shoe-black-2"))],
    ids=["text", "text and image"],
)
async def test_queries_with_text_are_not_expanded(store, query):
    on, off = await core(store, ON).search(query), await core(store, OFF).search(query)
    assert page(on) == page(off)


async def test_a_slow_member_leaves_an_expanded_image_query_a_partial_result(store):
    slow = core(FaultyStore(store, slow={"m3": 1.5}), ON)
    with request_deadline(0.8):
        result = await slow.search(SearchQuery(image=image_of("shirt-red-0"), options=SearchOptions(top_k=3)))
    assert (result.partial, result.missing_members) == (True, ["m3"])
    assert result.hits[0].id == "shirt-red-0"


def test_a_negative_neighbour_count_is_refused_at_startup(store):
    with pytest.raises(ValueError, match="image_expansion"):
        core(store, dataclasses.replace(ON, image_expansion=-1))
