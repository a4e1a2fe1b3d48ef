"""How the Ingest servicer answers core errors, over real gRPC on loopback (shared status mapping)."""

from __future__ import annotations

import grpc
import pytest

from services.common.config import ServerConfig
from services.common.server import GrpcServer, ServiceBinding
from services.ingest.server import SERVICE_NAME, IngestServicer
from tests.ingest.conftest import RED
from tests.support.images import solid
from vitrine.v1 import ingest_pb2, ingest_pb2_grpc


async def buggy_embedder(images: list[bytes]):
    """An embedder call that hits a bug (a KeyError), not an embedder failure."""
    raise KeyError("bug in the embed path (test)")


@pytest.fixture
async def serve():
    """Start an ingest server on 127.0.0.1:0 over a servicer; yields a function giving its stub."""
    servers: list[GrpcServer] = []
    channels: list[grpc.aio.Channel] = []

    async def start(servicer: IngestServicer) -> ingest_pb2_grpc.IngestStub:
        binding = ServiceBinding(SERVICE_NAME, ingest_pb2_grpc.add_IngestServicer_to_server, servicer)
        server = GrpcServer(ServerConfig(port=0, grace_s=1.0), [binding])
        port = await server.start()
        await server.set_serving(True)
        servers.append(server)
        channels.append(grpc.aio.insecure_channel(f"127.0.0.1:{port}"))
        return ingest_pb2_grpc.IngestStub(channels[-1])

    yield start
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(0)


async def upsert_one(stub: ingest_pb2_grpc.IngestStub):
    async def stream():
        yield ingest_pb2.Product(id="a", image=solid(RED), attributes={"articleType": "Shirts"})

    return await stub.Upsert(stream(), timeout=10)


async def test_a_bug_in_the_core_is_internal_and_logged(make_core, bundle, serve, caplog):
    stub = await serve(IngestServicer(make_core(bundle, embed=buggy_embedder)))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await upsert_one(stub)
    assert info.value.code() == grpc.StatusCode.INTERNAL, info.value.details()
    assert "KeyError" in info.value.details()
    logged = [r for r in caplog.records if r.getMessage() == "ingest failed unexpectedly"]
    assert logged and logged[0].exc_info is not None and logged[0].exc_info[0] is KeyError


async def test_mapped_errors_keep_their_codes_and_a_starting_service_is_unavailable(make_core, bundle, serve):
    stub = await serve(IngestServicer(make_core(bundle)))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Count(ingest_pb2.CountRequest(filters={"a.": "x"}), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "filters['a.']" in info.value.details()
    starting = await serve(IngestServicer())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await upsert_one(starting)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and info.value.details() == "ingest is starting"
