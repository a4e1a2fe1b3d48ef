"""Bearer-token auth, TLS/mTLS and Prometheus metrics on the shared server bootstrap."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.config import ServerConfig
from services.common.server import GrpcServer, ServiceBinding
from services.embedder.server import SERVICE_NAME, EmbedderServicer
from tests.support.procs import free_port
from tests.support.tls import make_pki
from vitrine.v1 import embedder_pb2, embedder_pb2_grpc

TOKEN = "s3cret-token"


async def start(core, cfg: ServerConfig) -> tuple[GrpcServer, int]:
    server = GrpcServer(
        cfg,
        [
            ServiceBinding(
                SERVICE_NAME, embedder_pb2_grpc.add_EmbedderServicer_to_server, EmbedderServicer(core)
            )
        ],
    )
    port = await server.start()
    await server.set_serving(True)
    return server, port


async def test_bearer_token_required_but_health_open(core):
    server, port = await start(core, ServerConfig(port=0, auth_token=TOKEN))
    request = embedder_pb2.EmbedTextsRequest(texts=["red dress"])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = embedder_pb2_grpc.EmbedderStub(channel)
            for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.EmbedTexts(request, metadata=metadata)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            ok = await stub.EmbedTexts(request, metadata=(("authorization", f"Bearer {TOKEN}"),))
            assert len(ok.embeddings) == 1
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(0)


async def test_tls_and_mutual_tls_round_trip(core, tmp_path):
    pki = make_pki(tmp_path)
    cfg = ServerConfig(
        port=0,
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        tls_client_ca=str(pki.ca_file),
    )
    server, port = await start(core, cfg)
    options = (("grpc.ssl_target_name_override", "localhost"),)
    try:
        good = grpc.ssl_channel_credentials(
            root_certificates=pki.ca_pem,
            private_key=pki.client_key_pem,
            certificate_chain=pki.client_cert_pem,
        )
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", good, options=options) as channel:
            resp = await embedder_pb2_grpc.EmbedderStub(channel).EmbedTexts(
                embedder_pb2.EmbedTextsRequest(texts=["x"])
            )
            assert len(resp.embeddings) == 1
        no_client_cert = grpc.ssl_channel_credentials(root_certificates=pki.ca_pem)
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", no_client_cert, options=options) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await embedder_pb2_grpc.EmbedderStub(channel).EmbedTexts(
                    embedder_pb2.EmbedTextsRequest(texts=["x"]), timeout=5
                )
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


async def scrape_until(metrics_port: int, wanted: str, timeout_s: float = 10.0) -> str:
    """Scrape /metrics off the event loop until ``wanted`` shows up (or the timeout passes).

    The server counts an aborted RPC in the interceptor's ``finally``, which can run just after the
    client already holds the error status; a blocking scrape on the event loop would starve it.
    """
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
        if wanted in body or asyncio.get_running_loop().time() > deadline:
            return body
        await asyncio.sleep(0.05)


async def test_metrics_count_requests_by_code(core):
    metrics_port = free_port()
    server, port = await start(core, ServerConfig(port=0, metrics_port=metrics_port))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = embedder_pb2_grpc.EmbedderStub(channel)
            await stub.EmbedTexts(embedder_pb2.EmbedTextsRequest(texts=["a", "b"]))
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.EmbedTexts(embedder_pb2.EmbedTextsRequest(texts=[""]))
        body = await scrape_until(metrics_port, 'code="INVALID_ARGUMENT",method="EmbedTexts"')
    finally:
        await server.stop(0)
    assert 'vitrine_rpc_requests_total{code="OK",method="EmbedTexts",service="vitrine.v1.Embedder"}' in body
    assert 'code="INVALID_ARGUMENT",method="EmbedTexts"' in body
    assert "vitrine_embedder_batch_size_count" in body
    assert 'vitrine_rpc_latency_seconds_bucket{le="0.001",method="EmbedTexts"' in body
