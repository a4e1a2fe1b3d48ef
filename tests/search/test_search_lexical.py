"""The lexical member in search (both adapters): fused with the dense members, selectable, skipped
without text; calibrated relevance and no_good_match; min_relevance checked."""

from __future__ import annotations

import dataclasses
import math

import pytest

from domain.calibration import Calibration, feature_names
from domain.lexical import LEXICAL_MEMBER, LexicalSpec
from services.common.config import SearchConfig, StoreConfig
from services.search.core import SearchCore
from services.search.errors import SearchValidationError
from services.search.lexical import NO_TEXT, NO_WORDS
from services.search.model import SearchOptions, SearchQuery, SimilarQuery
from services.storage.factory import open_store
from services.storage.port import Point
from tests.support.search import (
    INDEXES,
    MEMBER_DIMS,
    SyntheticCatalog,
    SyntheticEmbedder,
    image_of,
    search_bundle,
)

# No query cache: the synthetic embedder is case-sensitive (real tokenizers lower-case), and these
# tests send the same words in different cases on purpose.
CFG = SearchConfig(
    default_top_k=5, max_top_k=50, max_offset=100, min_candidates=30, max_filters=3, query_cache_size=0
)
CATALOG = SyntheticCatalog()
SPEC = LexicalSpec(weight=3.0)
BRAND = "Zorvex"  # a word no dense member knows


def brand_of(item) -> str:
    return BRAND if item.id.endswith("-0") else "Plainwear"


def lexical_points() -> list[Point]:
    points = []
    for item in CATALOG.items:
        payload = {
            **CATALOG.payload(item),
            "text": f"{brand_of(item)} {item.colour.title()} {item.concept.title()}",
        }
        vectors = {**CATALOG.vectors[item.id], LEXICAL_MEMBER: SPEC.document(payload["text"], payload)}
        points.append(Point(item.id, vectors, payload))
    return points


def calibration() -> Calibration:
    """Relevance driven by the lexical evidence (a hand-set model: fitting is tested in training)."""
    names = feature_names(tuple(MEMBER_DIMS))
    coefficients = [0.0] * len(names)
    coefficients[names.index("lexical.share_of_best")] = 4.0
    coefficients[names.index("agreement")] = 1.0
    return Calibration(
        tuple(MEMBER_DIMS), tuple(coefficients), -1.0, (0.0,) * len(names), (1.0,) * len(names), 0.6
    )


def lexical_bundle(fitted: Calibration | None = None):
    extra = {"lexical": SPEC.to_json(), "calibration": (fitted or calibration()).to_json()}
    return dataclasses.replace(search_bundle(default_fusion="weighted_rrf"), extra=extra)


def coverage_calibration() -> Calibration:
    """Relevance from the share of the query's words a hit has: 1.0 -> 0.88, 0.5 -> 0.12."""
    names = feature_names(tuple(MEMBER_DIMS))
    coefficients = [0.0] * len(names)
    coefficients[names.index("lexical.coverage")] = 8.0
    return Calibration(
        tuple(MEMBER_DIMS), tuple(coefficients), -6.0, (0.0,) * len(names), (1.0,) * len(names), 0.5
    )


@pytest.fixture(scope="module", params=["edge", "qdrant"])
def core(request, tmp_path_factory):
    if request.param == "edge":
        store = open_store(StoreConfig(backend="edge", path=str(tmp_path_factory.mktemp("edge"))))
    else:
        store = open_store(StoreConfig(backend="qdrant", url=":memory:"))
    store.ensure_collection("lex", MEMBER_DIMS, INDEXES, sparse_vectors=[LEXICAL_MEMBER])
    store.upsert("lex", lexical_points())
    store.swap_alias("catalog", "lex")
    yield SearchCore(CFG, store, lexical_bundle(), SyntheticEmbedder(CATALOG), "catalog")
    store.close()


async def search(core, text="", image=b"", **options):
    return await core.search(SearchQuery(text=text, image=image, options=SearchOptions(**options)))


async def test_brand_words_rank_the_brand_first_only_with_the_lexical_member(core):
    wanted = {i.id for i in CATALOG.items if i.concept == "dress" and brand_of(i) == BRAND}
    # combsum: the brand's lexical score gap counts. Under RRF the three brand dresses tie on the
    # lexical member, and which of them takes lexical rank 3 (and loses to a dense favourite) is
    # the store's tie order.
    fused = await search(core, f"{BRAND.lower()} dress", top_k=3, explain=True, fusion="combsum")
    assert {h.id for h in fused.hits} == wanted
    assert all(any(c.member == LEXICAL_MEMBER for c in h.members) for h in fused.hits)
    dense_only = await search(core, f"{BRAND} dress", top_k=3, members=["m1", "m2", "m3"], fusion="combsum")
    assert {h.id for h in dense_only.hits} != wanted
    assert fused.skipped_members == {} and not fused.partial


async def test_single_lexical_returns_only_items_with_the_words(core):
    result = await search(core, f"{BRAND}s", fusion="single:lexical", top_k=50, explain=True)
    assert {h.id for h in result.hits} == {i.id for i in CATALOG.items if brand_of(i) == BRAND}
    assert result.fusion == "single:lexical"
    assert all([c.member for c in h.members] == [LEXICAL_MEMBER] for h in result.hits)
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


async def test_image_only_and_more_like_this_skip_the_lexical_member_and_say_so(core):
    result = await search(core, image=image_of("dress-red-0"), explain=True)
    assert result.skipped_members == {LEXICAL_MEMBER: NO_TEXT} and not result.partial
    assert result.hits[0].id == "dress-red-0"
    assert all(c.member != LEXICAL_MEMBER for h in result.hits for c in h.members)
    similar = await core.more_like_this(SimilarQuery("dress-red-0"))
    assert LEXICAL_MEMBER in similar.skipped_members and similar.hits
    stop_words = await search(core, "the and of")
    assert stop_words.skipped_members == {LEXICAL_MEMBER: NO_WORDS}
    with pytest.raises(SearchValidationError) as err:
        await search(core, image=image_of("dress-red-0"), fusion="single:lexical")
    assert err.value.field == "fusion"


async def test_members_can_exclude_the_lexical_member(core):
    result = await search(core, f"{BRAND} dress", members=["m1", "m2"], explain=True)
    assert {c.member for h in result.hits for c in h.members} <= {"m1", "m2"}
    with pytest.raises(SearchValidationError, match="valid"):
        await search(core, "dress", members=["lexicon"])


async def test_relevance_and_no_good_match(core):
    found = await search(core, f"{BRAND} dress", top_k=5)
    assert all(0.0 <= h.relevance <= 1.0 for h in found.hits)
    assert found.hits[0].relevance > 0.6 and not found.no_good_match
    assert found.relevance_threshold == pytest.approx(0.6)
    relevances = [h.relevance for h in found.hits]
    assert relevances[0] == max(relevances)
    missing = await search(core, "garden hose", top_k=5)
    assert missing.no_good_match and all(h.relevance < 0.6 for h in missing.hits)
    stricter = await search(core, f"{BRAND} dress", top_k=5, min_relevance=0.999)
    assert stricter.no_good_match and stricter.relevance_threshold == pytest.approx(0.999)


async def test_word_coverage_of_the_served_hits_drives_relevance(core):
    covered = SearchCore(CFG, core.store, lexical_bundle(coverage_calibration()), core.embedder, "catalog")
    found = await search(covered, f"a photo of {BRAND.lower()} dresses", top_k=5)
    items = {i.id: i for i in CATALOG.items}
    both = [h for h in found.hits if brand_of(items[h.id]) == BRAND and items[h.id].concept == "dress"]
    assert both and not found.no_good_match  # prompt words ("a photo of") are no query words
    assert all(h.relevance == pytest.approx(0.8808, abs=1e-3) for h in both)
    # every word is in the catalog, but no product has both: nothing on the page covers the query
    mixed = await search(covered, f"{BRAND} hose", top_k=5)
    assert mixed.no_good_match and all(h.relevance < 0.5 for h in mixed.hits)


@pytest.mark.parametrize("bad", [math.nan, -0.1, 1.5, math.inf])
async def test_min_relevance_outside_unit_interval_is_invalid(core, bad):
    with pytest.raises(SearchValidationError) as err:
        await search(core, "dress", min_relevance=bad)
    assert err.value.field == "min_relevance"
