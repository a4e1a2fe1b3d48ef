"""Search.Facets on both adapters against brute-force counts, with and without a query; gRPC contract."""

from __future__ import annotations

from collections import Counter

import grpc
import pytest

from services.common.config import SearchConfig, ServerConfig, StoreConfig
from services.common.server import GrpcServer, ServiceBinding
from services.search.core import SearchCore
from services.search.errors import SearchValidationError
from services.search.model import FacetsQuery, SearchOptions, SearchQuery
from services.search.server import SERVICE_NAME, SearchServicer
from services.storage.factory import open_store
from services.storage.filters import WireCondition
from tests.support.search import ALIAS, SyntheticCatalog, SyntheticEmbedder, search_bundle
from vitrine.v1 import common_pb2, search_pb2, search_pb2_grpc

CATALOG = SyntheticCatalog()
CFG = SearchConfig(max_top_k=50, min_candidates=10, facet_candidates=20)
FIELDS = ["articleType", "baseColour", "gender"]


@pytest.fixture(params=["edge", "qdrant"])
def core(request, tmp_path):
    cfg = (
        StoreConfig(backend="edge", path=str(tmp_path / "edge"))
        if request.param == "edge"
        else StoreConfig(backend="qdrant", url=":memory:")
    )
    store = open_store(cfg)
    CATALOG.load(store)
    yield SearchCore(CFG, store, search_bundle(), SyntheticEmbedder(CATALOG), ALIAS)
    store.close()


def brute_force(payloads, limit=10):
    out = {}
    for name in FIELDS:
        counts = Counter(str(p[name]) for p in payloads if name in p)
        out[name] = sorted(counts.items(), key=lambda vc: (-vc[1], vc[0]))[:limit]
    return out


async def test_facets_without_query_count_every_matching_item(core):
    result = await core.facets(
        FacetsQuery(fields=FIELDS, conditions=[WireCondition("gender", none_of=["Men"])])
    )
    payloads = [CATALOG.payload(i) for i in CATALOG.items if CATALOG.payload(i)["gender"] != "Men"]
    assert result.facets == brute_force(payloads)
    assert result.candidates == 0
    limited = await core.facets(FacetsQuery(fields=["baseColour"], limit=2))
    assert (
        limited.facets["baseColour"]
        == brute_force([CATALOG.payload(i) for i in CATALOG.items], 2)["baseColour"]
    )


async def test_facets_with_query_count_the_fused_candidates(core):
    filters = {"gender": "Women|Unisex"}
    result = await core.facets(FacetsQuery(text="red dress", filters=filters, fields=FIELDS))
    page = await core.search(
        SearchQuery(text="red dress", options=SearchOptions(top_k=CFG.facet_candidates, filters=filters))
    )
    assert result.candidates == len(page.hits) > 0
    assert result.facets == brute_force([h.attributes for h in page.hits])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (FacetsQuery(), "fields"),
        (FacetsQuery(fields=["text"]), "fields[0]"),
        (FacetsQuery(fields=["gender", "brand"]), "fields[1]"),
        (FacetsQuery(fields=["gender"], limit=-1), "limit"),
        (FacetsQuery(fields=["gender"], conditions=[WireCondition("gender", lt=3.0)]), "conditions"),
        (FacetsQuery(fields=["gender", "season"]), "fields[1]"),  # declared, but the collection has no index
    ],
)
async def test_bad_facet_requests_name_the_field(core, query, field):
    with pytest.raises(SearchValidationError) as info:
        await core.facets(query)
    assert info.value.field == field


async def test_facets_and_conditions_over_grpc(tmp_path):
    store = open_store(StoreConfig(backend="edge", path=str(tmp_path / "edge")))
    CATALOG.load(store)
    servicer = SearchServicer(SearchCore(CFG, store, search_bundle(), SyntheticEmbedder(CATALOG), ALIAS))
    binding = ServiceBinding(SERVICE_NAME, search_pb2_grpc.add_SearchServicer_to_server, servicer)
    server = GrpcServer(ServerConfig(port=0, grace_s=0.5), [binding])
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = search_pb2_grpc.SearchStub(channel)
            response = await stub.Facets(search_pb2.FacetsRequest(fields=["gender"], limit=5), timeout=10)
            counts = Counter(CATALOG.payload(i)["gender"] for i in CATALOG.items)
            assert {v.value: v.count for v in response.facets[0].values} == dict(counts)
            assert response.facets[0].field == "gender"
            none_men = common_pb2.Condition(field="gender", none_of=["Men"])
            hits = await stub.Search(
                search_pb2.SearchRequest(text="red dress", top_k=20, conditions=[none_men]), timeout=10
            )
            assert hits.hits and all(h.attributes["gender"] != "Men" for h in hits.hits)
            for bad, field in [
                (common_pb2.Condition(field="gender", gte=1), "conditions"),
                (common_pb2.Condition(field="year"), "conditions"),
            ]:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.Search(search_pb2.SearchRequest(text="x", conditions=[bad]), timeout=10)
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert info.value.details().startswith(f"{field}: conditions[0]")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Facets(search_pb2.FacetsRequest(fields=["productDisplayName"]), timeout=10)
            assert (
                info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "fields[0]" in info.value.details()
            )
    finally:
        await server.stop(0)
        store.close()


async def test_facet_on_a_field_without_index_is_invalid_argument_over_grpc(core):
    """A declared field the collection was built without an index for: refused, naming the field."""
    servicer = SearchServicer(core)
    binding = ServiceBinding(SERVICE_NAME, search_pb2_grpc.add_SearchServicer_to_server, servicer)
    server = GrpcServer(ServerConfig(port=0, grace_s=0.5), [binding])
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = search_pb2_grpc.SearchStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Facets(search_pb2.FacetsRequest(fields=["gender", "season"]), timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert info.value.details().startswith("fields[1]: 'season' has no index")
            assert "catalog schema" in info.value.details()
            # with a query the fused candidates' payloads are counted: no index needed
            counted = await stub.Facets(
                search_pb2.FacetsRequest(text="red dress", fields=["season"]), timeout=10
            )
            assert [f.field for f in counted.facets] == ["season"]
    finally:
        await server.stop(0)
