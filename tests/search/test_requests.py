"""Client-side request building shared by the CLI and the web gateway."""

from __future__ import annotations

import pytest

from services.search.requests import parse_filters, request_options
from services.search.server import search_query, similar_query
from vitrine.v1 import common_pb2, search_pb2


def test_parse_filters_trims_and_names_the_malformed_item():
    assert parse_filters([" gender = Women ", "articleType=Tshirts|Shirts"]) == {
        "gender": "Women",
        "articleType": "Tshirts|Shirts",
    }
    for bad in ("oops", "=x", "gender=", " = "):
        with pytest.raises(ValueError, match="expected FIELD=VALUE") as info:
            parse_filters(["gender=Men", bad])
        assert repr(bad) in str(info.value)


def test_one_set_of_options_fits_both_requests_and_reaches_the_core_unchanged():
    condition = common_pb2.Condition(field="price", lte=50.0)
    options = request_options(
        top_k=5,
        offset=10,
        filters={"gender": "Men"},
        fusion="rrf",
        members=["m1"],
        explain=True,
        min_score=0.25,
        conditions=[condition],
    )
    search = search_query(search_pb2.SearchRequest(text="red", cluster_rerank=True, **options)).options
    similar = similar_query(search_pb2.MoreLikeThisRequest(id="p1", **options)).options
    for core in (search, similar):
        assert (core.top_k, core.offset, core.fusion, core.members) == (5, 10, "rrf", ["m1"])
        assert core.filters == {"gender": "Men"}
        assert core.explain and core.min_score == 0.25
        assert [(c.field, c.lte, c.gte) for c in core.conditions] == [("price", 50.0, None)]
    assert search.cluster_rerank and not similar.cluster_rerank
