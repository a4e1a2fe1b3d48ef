"""The embedder over real gRPC on loopback: stubs, status codes, health and reflection."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.support.images import solid
from vitrine.v1 import embedder_pb2


async def test_embed_texts_and_images(embedder_stub):
    resp = await embedder_stub.EmbedTexts(embedder_pb2.EmbedTextsRequest(texts=["red dress", "watch"]))
    assert len(resp.embeddings) == 2
    assert [v.member for v in resp.embeddings[0].vectors] == ["m1", "m2"]
    assert abs(np.linalg.norm(resp.embeddings[0].vectors[0].values) - 1) < 1e-5
    resp = await embedder_stub.EmbedImages(embedder_pb2.EmbedImagesRequest(images=[solid()], members=["m2"]))
    assert [v.member for v in resp.embeddings[0].vectors] == ["m2"]
    assert len(resp.embeddings[0].vectors[0].values) == 48


async def test_get_bundle(embedder_stub):
    info = await embedder_stub.GetBundle(embedder_pb2.GetBundleRequest())
    assert info.name == "test-random" and info.version == "1"
    assert [(m.name, m.dim) for m in info.members] == [("m1", 32), ("m2", 48)]
    assert info.device == "cpu" and info.precision == "fp32"


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        (embedder_pb2.EmbedImagesRequest(images=[solid(), b"\x89PNG\r\n"]), "images[1]"),
        (embedder_pb2.EmbedImagesRequest(images=[b""]), "images[0]: empty"),
        (embedder_pb2.EmbedTextsRequest(texts=["ok"], members=["zz"]), "members[0]: unknown member 'zz'"),
        (embedder_pb2.EmbedTextsRequest(texts=[""]), "texts[0]: empty text"),
        (embedder_pb2.EmbedTextsRequest(), "texts: at least one item"),
    ],
)
async def test_bad_requests_get_invalid_argument(embedder_stub, request_, needle):
    method = (
        embedder_stub.EmbedImages
        if isinstance(request_, embedder_pb2.EmbedImagesRequest)
        else embedder_stub.EmbedTexts
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await method(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()
    ok = await embedder_stub.EmbedTexts(embedder_pb2.EmbedTextsRequest(texts=["still alive"]))
    assert len(ok.embeddings) == 1


async def test_health_follows_readiness(embedder_server):
    server, address = embedder_server
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "vitrine.v1.Embedder"):
            resp = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        await server.set_serving(False)
        resp = await health.Check(health_pb2.HealthCheckRequest(service="vitrine.v1.Embedder"))
        assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_reflection_lists_services(embedder_server):
    _, address = embedder_server
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        names = []
        async for resp in stub.ServerReflectionInfo(iter([request])):
            names = [s.name for s in resp.list_services_response.service]
    assert "vitrine.v1.Embedder" in names and "grpc.health.v1.Health" in names
