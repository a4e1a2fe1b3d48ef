"""The search core on real stores (Edge in a temp dir, qdrant-client in memory) and a synthetic catalog."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator

import numpy as np
import pytest

from domain.fusion import METHODS
from services.common.config import SearchConfig
from services.common.deadlines import request_deadline
from services.search.core import SearchCore
from services.search.errors import ItemNotFound, SearchDeadlineExceeded, SearchUnavailable
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

CFG = SearchConfig(default_top_k=5, max_top_k=50, max_offset=100, min_candidates=30, max_filters=3)
NO_STORE_RRF = dataclasses.replace(CFG, store_rrf=False)
CATALOG = SyntheticCatalog()
ALL_FUSIONS = [*METHODS, "single:m1", "single:m2", "single:m3"]


@pytest.fixture(scope="module", params=["edge", "qdrant"])
def store(request, tmp_path_factory) -> Iterator[VectorStore]:
    """The synthetic catalog loaded once per backend."""
    s = synthetic_store(request.param, tmp_path_factory, CATALOG)
    yield s
    s.close()


def make_core(store, embedder=None, cfg: SearchConfig = CFG) -> SearchCore:
    return SearchCore(cfg, store, search_bundle(), embedder or SyntheticEmbedder(CATALOG), ALIAS)


async def text_search(core: SearchCore, text: str, **options) -> list[str]:
    result = await core.search(SearchQuery(text=text, options=SearchOptions(**options)))
    return [h.id for h in result.hits]


async def test_text_query_finds_the_right_items(store):
    core = make_core(store)
    result = await core.search(SearchQuery(text="red dress", options=SearchOptions(top_k=3, explain=True)))
    assert {h.id for h in result.hits} == CATALOG.ids("dress", "red")
    assert (result.partial, result.missing_members, result.fusion) == (False, [], "rrf")
    assert result.collection == COLLECTION
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    first = result.hits[0]
    assert first.matched_members == 3
    assert [m.member for m in first.members] == ["m1", "m2", "m3"]
    assert all(m.rank <= 3 and m.score > 0.9 for m in first.members)
    assert [m.cluster for m in first.members] == [0, 0, -1]  # dress = concept 0; m3 has no clusters
    assert first.attributes["articleType"] == "Dress" and first.attributes["baseColour"] == "Red"
    assert first.attributes["year"] == "2012" and "cluster" not in first.attributes
    # the next items are the other dresses
    ten = await text_search(core, "red dress", top_k=9)
    assert set(ten) == CATALOG.ids("dress")


async def test_explain_off_leaves_member_evidence_out(store):
    query = SearchQuery(text="blue watch", options=SearchOptions(top_k=2, fusion="weighted_rrf"))
    result = await make_core(store).search(query)
    assert all(h.members == () and h.matched_members == 3 for h in result.hits)
    # plain rrf without explain is fused by the store: same hits, member count not known
    rrf = SearchOptions(top_k=2, fusion="rrf")
    by_store = await make_core(store).search(SearchQuery(text="blue watch", options=rrf))
    in_python = await make_core(store, cfg=NO_STORE_RRF).search(SearchQuery(text="blue watch", options=rrf))
    assert [h.id for h in by_store.hits] == [h.id for h in in_python.hits]
    assert all(h.matched_members == 0 for h in by_store.hits)
    assert all(h.matched_members == 3 for h in in_python.hits)


def same_page(a, b) -> bool:
    """Same hits with the same scores (the store sums in float32; exact ties may swap places)."""
    return {h.id: h.score for h in a.hits} == pytest.approx({h.id: h.score for h in b.hits}, rel=1e-5)


@pytest.mark.parametrize(
    "options",
    [
        SearchOptions(top_k=5),
        SearchOptions(top_k=4, offset=4),
        SearchOptions(top_k=6, filters={"gender": "Women"}),
        SearchOptions(top_k=10, min_score=0.03),
        SearchOptions(top_k=5, members=["m1", "m3"]),
    ],
)
async def test_store_fused_rrf_equals_rrf_fused_here(store, options):
    options = dataclasses.replace(options, fusion="rrf")
    by_store, in_python = make_core(store), make_core(store, cfg=NO_STORE_RRF)
    for text in ["red dress", "black shoe", "blue"]:
        a = await by_store.search(SearchQuery(text=text, options=options))
        b = await in_python.search(SearchQuery(text=text, options=options))
        assert same_page(a, b) and a.hits
        assert [h.attributes for h in sorted(a.hits, key=lambda h: h.id)] == [
            h.attributes for h in sorted(b.hits, key=lambda h: h.id)
        ]
    similar = SimilarQuery(id="shoe-black-2", options=options)
    a, b = await by_store.more_like_this(similar), await in_python.more_like_this(similar)
    assert same_page(a, b) and "shoe-black-2" not in {h.id for h in a.hits}


@pytest.mark.parametrize("fusion", ["rrf", "combsum", "single:m2"])
async def test_image_query_finds_itself_first(store, fusion):
    core = make_core(store)
    for product_id in ["shoe-black-2", "shirt-red-0"]:
        result = await core.search(
            SearchQuery(image=image_of(product_id), options=SearchOptions(fusion=fusion))
        )
        assert result.hits[0].id == product_id
        assert result.fusion == fusion


async def test_text_weight_mixes_text_and_image(store):
    core = make_core(store)
    image = image_of("dress-red-1")

    async def top(weight: float | None) -> list[str]:
        query = SearchQuery(
            text="blue jeans", image=image, text_weight=weight, options=SearchOptions(top_k=3)
        )
        return [h.id for h in (await core.search(query)).hits]

    assert set(await top(1.0)) == CATALOG.ids("jeans", "blue")
    assert (await top(0.0))[0] == "dress-red-1"
    # default weight 0.5: per member normalize(0.5 * text + 0.5 * image)
    text, img = CATALOG.text_vectors("blue jeans"), CATALOG.vectors["dress-red-1"]
    mixed = {m: (0.5 * text[m] + 0.5 * img[m]) / np.linalg.norm(0.5 * text[m] + 0.5 * img[m]) for m in text}
    by_hand = await core.search_vectors(mixed, SearchOptions(top_k=3))
    assert await top(None) == await top(0.5) == [h.id for h in by_hand.hits]


async def test_filters_hold_on_every_hit(store):
    core = make_core(store)
    filters = {"gender": "Women", "articleType": "Shirt|Jeans"}
    result = await core.search(
        SearchQuery(text="red dress", options=SearchOptions(top_k=20, filters=filters))
    )
    assert result.hits
    for hit in result.hits:
        assert hit.attributes["gender"] == "Women" and hit.attributes["articleType"] in {"Shirt", "Jeans"}
    expected = {i.id for i in CATALOG.items if i.gender == "Women" and i.concept in {"shirt", "jeans"}}
    assert {h.id for h in result.hits} == expected
    by_cluster = await text_search(core, "red dress", top_k=20, filters={"cluster.m1": "3"})
    assert set(by_cluster) == CATALOG.ids("watch")


@pytest.mark.parametrize("fusion", ALL_FUSIONS)
async def test_pages_concatenate_to_the_top_2k(store, fusion):
    core = make_core(store)
    k = 6
    top = await text_search(core, "black shoe", top_k=2 * k, fusion=fusion)
    first = await text_search(core, "black shoe", top_k=k, fusion=fusion)
    second = await text_search(core, "black shoe", top_k=k, offset=k, fusion=fusion)
    assert len(top) == 2 * k
    assert first + second == top
    assert not set(first) & set(second)


async def test_repeated_queries_are_identical(store):
    core = make_core(store)
    runs = [await core.search(SearchQuery(text="shirt", options=SearchOptions(top_k=15))) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]


async def test_one_failing_member_gives_a_partial_result(store):
    core = make_core(FaultyStore(store, failing=["m2"]))
    result = await core.search(SearchQuery(text="red dress", options=SearchOptions(top_k=3, explain=True)))
    assert (result.partial, result.missing_members) == (True, ["m2"])
    assert {h.id for h in result.hits} == CATALOG.ids("dress", "red")
    assert all([m.member for m in h.members] == ["m1", "m3"] for h in result.hits)


async def test_a_slow_member_is_dropped_at_the_deadline(store):
    core = make_core(FaultyStore(store, slow={"m3": 1.5}))
    started = time.monotonic()
    with request_deadline(0.5):
        result = await core.search(SearchQuery(text="red dress", options=SearchOptions(top_k=3)))
    assert time.monotonic() - started < 1.2
    assert (result.partial, result.missing_members) == (True, ["m3"])
    assert {h.id for h in result.hits} == CATALOG.ids("dress", "red")


async def test_no_member_answering_raises(store):
    failing = make_core(FaultyStore(store, failing=["m1", "m2", "m3"]))
    with pytest.raises(SearchUnavailable, match="no member answered") as info:
        await failing.search(SearchQuery(text="red dress"))
    assert not isinstance(info.value, SearchDeadlineExceeded)
    slow = make_core(FaultyStore(store, slow=dict.fromkeys(["m1", "m2", "m3"], 1.0)))
    with pytest.raises(SearchDeadlineExceeded):
        with request_deadline(0.2):
            await slow.search(SearchQuery(text="red dress"))


async def test_embedder_failures_and_deadline_propagation(store):
    embedder = SyntheticEmbedder(CATALOG)
    with request_deadline(3.0):
        await make_core(store, embedder).search(SearchQuery(text="dress"))
    assert 2.5 < embedder.timeouts[-1] <= 3.0
    await make_core(store, embedder).search(SearchQuery(text="dress"))
    assert embedder.timeouts[-1] <= CFG.rpc_timeout_s
    with pytest.raises(SearchUnavailable, match="embedder"):
        await make_core(store, SyntheticEmbedder(CATALOG, unavailable=True)).search(SearchQuery(text="dress"))
    with pytest.raises(SearchDeadlineExceeded, match="embedder"):
        slow = SyntheticEmbedder(CATALOG, delay_s=1.0)
        with request_deadline(0.2):
            await make_core(store, slow).search(SearchQuery(text="dress"))
    with pytest.raises(SearchDeadlineExceeded):
        with request_deadline(0.0):
            await make_core(store).search(SearchQuery(text="dress"))


async def test_search_vectors_skips_the_embedder(store):
    embedder = SyntheticEmbedder(CATALOG)
    core = make_core(store, embedder)
    result = await core.search_vectors(CATALOG.vectors["watch-blue-1"], SearchOptions(top_k=1))
    assert [h.id for h in result.hits] == ["watch-blue-1"] and embedder.timeouts == []


async def test_more_like_this(store):
    core = make_core(store)
    result = await core.more_like_this(SimilarQuery("jeans-black-0", options=SearchOptions(top_k=2)))
    assert {h.id for h in result.hits} == CATALOG.ids("jeans", "black") - {"jeans-black-0"}
    with_self = await core.more_like_this(SimilarQuery("jeans-black-0", include_self=True))
    assert with_self.hits[0].id == "jeans-black-0"
    women = await core.more_like_this(
        SimilarQuery("jeans-black-0", options=SearchOptions(top_k=30, filters={"gender": "Men"}))
    )
    assert women.hits and all(h.attributes["gender"] == "Men" for h in women.hits)
    assert "jeans-black-0" not in {h.id for h in women.hits}
    with pytest.raises(ItemNotFound, match="no-such-item"):
        await core.more_like_this(SimilarQuery("no-such-item"))


async def test_get_items(store):
    items = await make_core(store).get_items(["watch-red-2", "missing", "dress-blue-0"])
    assert [h.id for h in items] == ["watch-red-2", "dress-blue-0"]
    assert items[0].attributes["text"] == "Red Watch 2" and "cluster" not in items[0].attributes
    assert await make_core(store).get_items([]) == []


async def test_min_score_drops_weak_hits(store):
    core = make_core(store)
    full = await core.search(SearchQuery(text="red dress", options=SearchOptions(top_k=10, fusion="combsum")))
    cutoff = full.hits[3].score
    cut = await core.search(
        SearchQuery(text="red dress", options=SearchOptions(top_k=10, fusion="combsum", min_score=cutoff))
    )
    assert [h.id for h in cut.hits] == [h.id for h in full.hits if h.score >= cutoff]
    assert all(h.score >= cutoff for h in cut.hits) and len(cut.hits) < len(full.hits)


async def test_cluster_rerank_lifts_the_majority_cluster(store):
    # Between dress and shirt, leaning blue: blue dresses and shirts interleave, then red/black ones.
    # The top 5 of m1 and of m2 hold 3 dresses each: dress is the majority cluster of both members.
    core = make_core(store, cfg=dataclasses.replace(CFG, cluster_top_n=5, store_rrf=False))
    d = CATALOG.directions
    query = {m: (v["dress"] + 0.95 * v["shirt"] + 0.6 * v["blue"]) for m, v in d.items()}
    query = {m: v / np.linalg.norm(v) for m, v in query.items()}
    plain = await core.search_vectors(query, SearchOptions(top_k=12))
    boosted = await core.search_vectors(query, SearchOptions(top_k=12, cluster_rerank=True))
    concepts = [CATALOG.item(h.id).concept for h in plain.hits]
    assert concepts.index("shirt") < len(concepts) - 1 - concepts[::-1].index("dress")  # interleaved
    boosted_concepts = [CATALOG.item(h.id).concept for h in boosted.hits]
    assert boosted_concepts[:9] == ["dress"] * 9
    # every dress gains the full boost (0.5 of its score); shirts keep theirs
    before = {h.id: h.score for h in plain.hits}
    for hit in boosted.hits:
        if hit.id in before:
            factor = 1.5 if CATALOG.item(hit.id).concept == "dress" else 1.0
            assert math.isclose(hit.score, before[hit.id] * factor, rel_tol=1e-9)


async def test_mmr_and_max_per_cluster_diversify(store):
    core = make_core(store)
    plain = await text_search(core, "red dress", top_k=3)
    assert {CATALOG.item(i).group for i in plain} == {("dress", "red")}
    diverse = await text_search(core, "red dress", top_k=3, mmr_lambda=0.3)
    assert diverse[0] in CATALOG.ids("dress", "red")
    assert len({CATALOG.item(i).group for i in diverse}) == 3
    capped = await text_search(core, "red dress", top_k=5, max_per_cluster=1)
    assert len({CATALOG.item(i).concept for i in capped}) == 5
    assert capped[0] in CATALOG.ids("dress", "red")


async def test_members_subset_and_weighted_fusion(store):
    core = make_core(store)
    result = await core.search(
        SearchQuery(text="black watch", options=SearchOptions(top_k=3, members=["m3", "m1"], explain=True))
    )
    assert {h.id for h in result.hits} == CATALOG.ids("watch", "black")
    assert all([m.member for m in h.members] == ["m1", "m3"] for h in result.hits)
    weighted = await core.search(
        SearchQuery(text="black watch", options=SearchOptions(top_k=1, fusion="weighted_rrf", explain=True))
    )
    # m2 weighs 2: the top hit's fused score is the weighted sum of 1 / (60 + rank)
    hit = weighted.hits[0]
    expected = sum((2.0 if m.member == "m2" else 1.0) / (60 + m.rank) for m in hit.members)
    assert math.isclose(hit.score, expected, rel_tol=1e-6)


async def test_a_short_budget_in_config_caps_the_deadline(store):
    embedder = SyntheticEmbedder(CATALOG)
    core = make_core(store, embedder, dataclasses.replace(CFG, rpc_timeout_s=2.0))
    with request_deadline(30.0):
        await core.search(SearchQuery(text="dress"))
    assert embedder.timeouts[-1] <= 2.0
