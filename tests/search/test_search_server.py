"""The Search servicer on a real loopback gRPC server: messages, status codes, deadlines, the CLI."""

from __future__ import annotations

import asyncio
import io
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.config import SearchConfig, ServerConfig, StoreConfig
from services.common.server import GrpcServer, ServiceBinding
from services.search.__main__ import parse_args
from services.search.cli import run_client
from services.search.core import SearchCore
from services.search.server import SERVICE_NAME, SearchServicer
from services.storage.factory import open_store
from tests.support.procs import ROOT
from tests.support.search import (
    ALIAS,
    COLLECTION,
    FaultyStore,
    SyntheticCatalog,
    SyntheticEmbedder,
    image_of,
    search_bundle,
)
from vitrine.v1 import search_pb2, search_pb2_grpc

CFG = SearchConfig(default_top_k=5, max_top_k=50, max_offset=100, min_candidates=30, reply_reserve_s=0.2)
CATALOG = SyntheticCatalog()


@pytest.fixture(scope="module")
def real_store():
    store = open_store(StoreConfig(backend="qdrant", url=":memory:"))
    CATALOG.load(store)
    yield store
    store.close()


@pytest.fixture
async def serve(real_store):
    """Start a search server around a store (wrapper); yields (servicer, stub, address)."""
    servers: list[GrpcServer] = []
    channels: list[grpc.aio.Channel] = []

    async def start(store=None, core: bool = True):
        servicer = SearchServicer(
            SearchCore(CFG, store or real_store, search_bundle(), SyntheticEmbedder(CATALOG), ALIAS)
            if core
            else None
        )
        binding = ServiceBinding(SERVICE_NAME, search_pb2_grpc.add_SearchServicer_to_server, servicer)
        server = GrpcServer(ServerConfig(port=0, grace_s=0.5), [binding])
        port = await server.start()
        await server.set_serving(True)
        servers.append(server)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        return servicer, search_pb2_grpc.SearchStub(channel), f"127.0.0.1:{port}"

    yield start
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(0)


async def test_search_returns_hits_with_explanations(serve):
    _, stub, address = await serve()
    response = await stub.Search(search_pb2.SearchRequest(text="red dress", top_k=3, explain=True), timeout=5)
    assert {h.id for h in response.hits} == CATALOG.ids("dress", "red")
    assert (response.fusion, response.collection, response.partial) == ("rrf", COLLECTION, False)
    hit = response.hits[0]
    assert hit.matched_members == 3 and hit.attributes["articleType"] == "Dress"
    assert [(m.member, m.cluster) for m in hit.members] == [("m1", 0), ("m2", 0), ("m3", -1)]
    assert all(1 <= m.rank <= 3 and m.score > 0.9 for m in hit.members)
    async with grpc.aio.insecure_channel(address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME)
        )
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_text_weight_presence_reaches_the_core(serve):
    _, stub, _ = await serve()
    request = search_pb2.SearchRequest(
        text="blue jeans", image=image_of("dress-red-1"), top_k=1, text_weight=0.0
    )
    assert [h.id for h in (await stub.Search(request, timeout=5)).hits] == ["dress-red-1"]
    request.top_k = 10
    request.text_weight = 0.5
    half = [h.id for h in (await stub.Search(request, timeout=5)).hits]
    request.ClearField("text_weight")  # unset means 0.5, not 0.0
    assert [h.id for h in (await stub.Search(request, timeout=5)).hits] == half
    request.text_weight = 1.0
    assert (await stub.Search(request, timeout=5)).hits[0].id in CATALOG.ids("jeans", "blue")


@pytest.mark.parametrize(
    ("request_kwargs", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "x", "top_k": 51}, "top_k"),
        ({"text": "x", "fusion": "nope"}, "fusion"),
        ({"text": "x", "filters": {"gender": ""}}, "filters"),
        ({"text": "x", "members": ["m7"]}, "members"),
        ({"text": "x", "text_weight": float("nan")}, "text_weight"),
        ({"text": "x", "min_relevance": float("nan")}, "min_relevance"),
        ({"text": "x", "min_relevance": 1.5}, "min_relevance"),
        ({"image": b"not an image"}, "image"),
    ],
)
async def test_bad_requests_are_invalid_argument(serve, request_kwargs, field):
    _, stub, _ = await serve()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Search(search_pb2.SearchRequest(**request_kwargs), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(f"{field}: ")


async def test_more_like_this_and_get_items(serve):
    _, stub, _ = await serve()
    similar = await stub.MoreLikeThis(search_pb2.MoreLikeThisRequest(id="watch-blue-0", top_k=2), timeout=5)
    assert {h.id for h in similar.hits} == CATALOG.ids("watch", "blue") - {"watch-blue-0"}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.MoreLikeThis(search_pb2.MoreLikeThisRequest(id="nope"), timeout=5)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "'nope'" in info.value.details()
    items = await stub.GetItems(search_pb2.GetItemsRequest(ids=["shoe-red-1", "nope"]), timeout=5)
    assert [(h.id, h.score, h.attributes["baseColour"]) for h in items.items] == [("shoe-red-1", 0.0, "Red")]


async def test_partial_and_unavailable(real_store, serve):
    _, partial_stub, _ = await serve(FaultyStore(real_store, failing=["m1"]))
    response = await partial_stub.Search(search_pb2.SearchRequest(text="red dress", top_k=3), timeout=5)
    assert (response.partial, list(response.missing_members)) == (True, ["m1"])
    assert {h.id for h in response.hits} == CATALOG.ids("dress", "red")
    _, down_stub, _ = await serve(FaultyStore(real_store, failing=["m1", "m2", "m3"]))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await down_stub.Search(search_pb2.SearchRequest(text="red dress"), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    _, starting_stub, _ = await serve(core=False)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await starting_stub.Search(search_pb2.SearchRequest(text="red dress"), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "starting" in info.value.details()


class BuggyStore(FaultyStore):
    """A store adapter whose member queries hit a bug (a KeyError), not a store failure."""

    def query(self, collection, queries, filters=None, payload_fields=None):
        raise KeyError("bug in the adapter (test)")

    def query_rrf(self, collection, queries, k, limit, filters=None):
        raise KeyError("bug in the adapter (test)")


async def test_a_bug_in_a_member_query_is_internal_and_logged(real_store, serve, caplog):
    _, stub, _ = await serve(BuggyStore(real_store))
    for fusion in ("rrf", "combsum"):  # store-side fusion first, then the member path
        caplog.clear()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Search(search_pb2.SearchRequest(text="red dress", fusion=fusion), timeout=5)
        assert info.value.code() == grpc.StatusCode.INTERNAL, info.value.details()
        assert "KeyError" in info.value.details()
        logged = [r for r in caplog.records if r.getMessage() == "search failed unexpectedly"]
        assert logged and logged[0].exc_info is not None and logged[0].exc_info[0] is KeyError


async def test_the_client_deadline_reaches_the_store_queries(real_store, serve):
    # m3 sleeps 2 s: with a 1 s client deadline the server answers in time without m3
    _, stub, _ = await serve(FaultyStore(real_store, slow={"m3": 2.0}))
    started = time.monotonic()
    response = await stub.Search(search_pb2.SearchRequest(text="red dress", top_k=3), timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert (response.partial, list(response.missing_members)) == (True, ["m3"])
    _, slow_stub, _ = await serve(FaultyStore(real_store, slow=dict.fromkeys(["m1", "m2", "m3"], 2.0)))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await slow_stub.Search(search_pb2.SearchRequest(text="red dress"), timeout=0.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_cli_prints_a_table(serve):
    _, _, address = await serve()
    out, err = io.StringIO(), io.StringIO()
    args = parse_args(
        ["query", "red dress", "--top-k", "2", "--explain", "--addr", address, "--filter", "gender=Women"]
    )
    assert await asyncio.to_thread(run_client, args, out, err) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["#", "id", "score", "name", "articleType", "colour", "members"]
    assert {line.split()[1] for line in lines[1:-1]} == {
        "dress-red-0",
        "dress-red-2",
    }  # the women's red dresses
    assert "m1:#" in lines[1] and "Red Dress" in lines[1] and lines[-1].startswith("2 hits, fusion=rrf")
    bad = parse_args(["query", "red dress", "--top-k", "999", "--addr", address])
    assert await asyncio.to_thread(run_client, bad, out, err) == 1
    assert "INVALID_ARGUMENT: top_k" in err.getvalue()
    assert run_client(parse_args(["query", "x", "--filter", "oops", "--addr", address]), out, err) == 2


async def test_cli_as_a_module(serve):
    _, _, address = await serve()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.search", "similar", "jeans-red-2", "--top-k", "2", "--addr", address,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()
    ids = {line.split()[1] for line in stdout.decode().splitlines()[1:-1]}
    assert ids == CATALOG.ids("jeans", "red") - {"jeans-red-2"}
