"""Every bad request raises SearchValidationError naming the field; good edge cases pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from services.common.config import SearchConfig, StoreConfig
from services.search.core import SearchCore
from services.search.errors import SearchValidationError
from services.search.model import SearchOptions, SearchQuery, SimilarQuery
from services.search.plan import check_config, make_plan, mix, text_weight
from services.storage.factory import open_store
from services.storage.filters import WireCondition
from tests.support.search import ALIAS, SyntheticCatalog, SyntheticEmbedder, image_of, search_bundle

CFG = SearchConfig(default_top_k=5, max_top_k=50, max_offset=100, min_candidates=30, max_filters=3)
CATALOG = SyntheticCatalog()
NAN = float("nan")


@pytest.fixture(scope="module")
def core():
    store = open_store(StoreConfig(backend="qdrant", url=":memory:"))
    CATALOG.load(store)
    yield SearchCore(CFG, store, search_bundle(), SyntheticEmbedder(CATALOG), ALIAS)
    store.close()


def query(
    text: str = "red dress", image: bytes = b"", text_weight: float | None = None, **options
) -> SearchQuery:
    return SearchQuery(text=text, image=image, text_weight=text_weight, options=SearchOptions(**options))


BAD_SEARCHES = [
    ("text", query(text="")),
    ("text", query(text="   ")),
    ("top_k", query(top_k=-1)),
    ("top_k", query(top_k=51)),
    ("offset", query(offset=-1)),
    ("offset", query(offset=101)),
    ("members", query(members=["m1", "m9"])),
    ("fusion", query(fusion="rrf2")),
    ("fusion", query(fusion="single:m9")),
    ("fusion", query(fusion="single:m2", members=["m1"])),
    ("filters", query(filters={"gender": ""})),
    ("filters", query(filters={"gender": "Men|"})),
    ("filters", query(filters={"bad field!": "x"})),
    ("filters", query(filters={"year": "twenty"})),
    ("conditions", query(conditions=[WireCondition("gender", gte=1.0)])),
    ("conditions", query(conditions=[WireCondition("year", lte=float("nan"))])),
    ("conditions", query(conditions=[WireCondition("year", lte="abc")])),  # type: ignore[arg-type]
    ("conditions", query(conditions=[WireCondition("brand")])),
    ("conditions", query(conditions=[WireCondition("brand", any_of=[""])])),
    ("conditions", query(filters={"gender": "Men"}, conditions=[WireCondition("gender", none_of=["Men"])])),
    ("conditions", query(conditions=[WireCondition(f"f{i}", any_of=["x"]) for i in range(4)])),
    ("filters", query(filters={"gender": "Men", "year": "2012", "season": "Fall", "usage": "Casual"})),
    ("text_weight", query(image=image_of("dress-red-0"), text_weight=1.5)),
    ("text_weight", query(image=image_of("dress-red-0"), text_weight=-0.1)),
    ("text_weight", query(image=image_of("dress-red-0"), text_weight=NAN)),
    ("text_weight", query(text_weight=NAN)),
    ("min_score", query(min_score=NAN)),
    ("min_score", query(min_score=float("inf"))),
    ("min_relevance", query(min_relevance=NAN)),
    ("min_relevance", query(min_relevance=-0.01)),
    ("min_relevance", query(min_relevance=1.01)),
    ("mmr_lambda", query(mmr_lambda=1.5)),
    ("mmr_lambda", query(mmr_lambda=-0.5)),
    ("mmr_lambda", query(mmr_lambda=NAN)),
    ("max_per_cluster", query(max_per_cluster=-1)),
    ("image", query(text="", image=b"\x89PNG not really")),
    ("image", query(image=b"garbage")),
]


@pytest.mark.parametrize(("field", "bad"), BAD_SEARCHES)
async def test_bad_search_requests_name_the_field(core, field, bad):
    with pytest.raises(SearchValidationError) as info:
        await core.search(bad)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


async def test_messages_list_the_valid_choices(core):
    with pytest.raises(SearchValidationError, match=r"valid: \['m1', 'm2', 'm3'\]"):
        await core.search(query(members=["m9"]))
    with pytest.raises(SearchValidationError, match="single:m3"):
        await core.search(query(fusion="nope"))
    with pytest.raises(SearchValidationError, match="at most 3"):
        await core.search(
            query(filters={"gender": "Men", "year": "2012", "season": "Fall", "usage": "Casual"})
        )
    with pytest.raises(
        SearchValidationError, match=r"conditions\[0\]\.gte: ranges need .*'gender' is a keyword"
    ):
        await core.search(query(conditions=[WireCondition("gender", gte=1.0)]))
    with pytest.raises(SearchValidationError, match=r"conditions\[0\]\.any_of: empty"):
        await core.search(query(conditions=[WireCondition("brand")]))
    with pytest.raises(SearchValidationError, match=r"filters\['year'\]: 'twenty' is not an integer"):
        await core.search(query(filters={"year": "twenty"}))


async def test_bad_more_like_this_and_get_items(core):
    for bad, field in [
        (SimilarQuery(""), "id"),
        (SimilarQuery("dress-red-0", options=SearchOptions(top_k=99)), "top_k"),
        (SimilarQuery("dress-red-0", options=SearchOptions(fusion="x")), "fusion"),
    ]:
        with pytest.raises(SearchValidationError) as info:
            await core.more_like_this(bad)
        assert info.value.field == field
    with pytest.raises(SearchValidationError, match=r"ids\[1\]: empty id"):
        await core.get_items(["dress-red-0", " "])
    with pytest.raises(SearchValidationError, match="at most 50 ids"):
        await core.get_items([f"id{i}" for i in range(51)])


async def test_boundary_values_are_accepted(core):
    result = await core.search(query(top_k=50, offset=0, text_weight=1.0, mmr_lambda=1.0, min_score=-1.0))
    assert len(result.hits) == 45  # the whole catalog: fewer than top_k
    assert (await core.search(query(offset=100))).hits == []
    both_ends = [query(image=image_of("dress-red-0"), text_weight=w) for w in (0.0, 1.0)]
    for q in both_ends:
        assert (await core.search(q)).hits
    assert (await core.search(query(fusion=" Single:m2 ", members=["m2", "m2"]))).fusion == "single:m2"


def test_plan_defaults_and_depth():
    bundle = search_bundle()
    plan = make_plan(SearchOptions(), CFG, bundle)
    assert (plan.top_k, plan.offset, plan.depth, plan.members) == (5, 0, 30, ("m1", "m2", "m3"))
    assert plan.method.name == "rrf" and plan.method.k == 60
    deep = make_plan(SearchOptions(top_k=20, offset=40, members=["m3", "m1"]), CFG, bundle, drop_one=True)
    assert (deep.depth, deep.members) == (180 + 1, ("m1", "m3"))
    k_from_config = make_plan(SearchOptions(), dataclasses.replace(CFG, rrf_k=5), bundle)
    assert k_from_config.method.k == 5
    assert make_plan(SearchOptions(), CFG, search_bundle("combmnz")).method.name == "combmnz"


def test_text_weight_and_mix():
    assert text_weight("shirt", b"", None) == 1.0
    assert text_weight("", b"img", 0.9) == 0.0
    assert text_weight("shirt", b"img", None) == 0.5
    assert text_weight("shirt", b"img", 0.25) == 0.25
    t, i = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert np.allclose(mix(t, i, 0.5), [2**-0.5, 2**-0.5])
    assert np.allclose(mix(t, i, 0.75), np.array([0.75, 0.25]) / np.hypot(0.75, 0.25))
    with pytest.raises(SearchValidationError, match="cancel out"):
        mix(t, -t, 0.5)


@pytest.mark.parametrize(
    "change",
    [
        {"overfetch": 0.5},
        {"default_top_k": 0},
        {"default_top_k": 500},
        {"min_candidates": 0},
        {"cluster_boost": -1.0},
        {"rpc_timeout_s": 0.0},
    ],
)
def test_bad_config_is_refused(change):
    name = next(iter(change))
    with pytest.raises(ValueError, match=f"search.{name}"):
        check_config(dataclasses.replace(CFG, **change))


def test_a_bad_bundle_default_fusion_fails_at_startup():
    with pytest.raises(ValueError, match="unknown fusion 'nope'"):
        SearchCore(
            CFG, open_store(StoreConfig(backend="qdrant", url=":memory:")), search_bundle("nope"), None, ALIAS
        )


def _lexical_plan(fusion: str = "weighted_rrf"):
    from domain.fusion import parse_fusion
    from domain.lexical import LEXICAL_MEMBER
    from services.search.plan import Plan

    members = ("m1", "m2", LEXICAL_MEMBER)
    weights = {"m1": 1.0, "m2": 3.0, LEXICAL_MEMBER: 16.0}
    method = parse_fusion(fusion, members, weights=weights)
    return Plan(members=members, method=method, top_k=10, offset=0, depth=100, filters={})


def test_a_text_and_image_query_scales_the_lexical_share_by_the_text_weight():
    from domain.lexical import LEXICAL_MEMBER
    from services.search.plan import with_text_share

    plan = _lexical_plan()
    assert with_text_share(plan, 1.0) is plan  # text only: the learned weights
    half = with_text_share(plan, 0.5).method.weights
    # learned share 16 / 20 = 0.8; half of it, 0.4, of the total: lexical = 0.4 / 0.6 * 4
    assert half[LEXICAL_MEMBER] == pytest.approx(0.4 / 0.6 * 4.0)
    assert half[LEXICAL_MEMBER] / (half[LEXICAL_MEMBER] + 4.0) == pytest.approx(0.4)
    assert (half["m1"], half["m2"]) == (1.0, 3.0)
    assert with_text_share(plan, 0.0).method.weights[LEXICAL_MEMBER] == 0.0
    assert plan.method.weights[LEXICAL_MEMBER] == 16.0  # the plan given is left as it was
    rrf = _lexical_plan("rrf")
    assert with_text_share(rrf, 0.5) is rrf  # no weights to scale
