"""Embedder fixtures: a core over the random bundle, and a real server on loopback."""

from __future__ import annotations

import dataclasses

import grpc
import pytest

from services.common.config import EmbedderConfig, ServerConfig
from services.common.server import GrpcServer, ServiceBinding
from services.embedder.core import EmbedderCore
from services.embedder.encoder import EnsembleEncoder
from services.embedder.server import SERVICE_NAME, EmbedderServicer
from vitrine.v1 import embedder_pb2_grpc

CFG = EmbedderConfig(device="cpu", threads=1, max_batch=16, max_wait_ms=20, max_queue=64, max_items=32)


@pytest.fixture(scope="session")
def encoder(random_bundle) -> EnsembleEncoder:
    """The random bundle loaded once."""
    return EnsembleEncoder.load(dataclasses.replace(CFG, bundle=str(random_bundle)))


@pytest.fixture
async def core(encoder):
    """A fresh core (its own batchers and pools) per test."""
    c = EmbedderCore(encoder, CFG)
    yield c
    await c.close()


@pytest.fixture
async def embedder_server(core):
    """A real embedder gRPC server on 127.0.0.1 with health and reflection; yields (server, address)."""
    server = GrpcServer(
        ServerConfig(port=0, grace_s=1.0),
        [ServiceBinding(SERVICE_NAME, embedder_pb2_grpc.add_EmbedderServicer_to_server, EmbedderServicer(core))],
    )
    port = await server.start()
    await server.set_serving(True)
    yield server, f"127.0.0.1:{port}"
    await server.stop(0)


@pytest.fixture
async def embedder_stub(embedder_server):
    """An EmbedderStub on an aio channel to the loopback server."""
    _, address = embedder_server
    async with grpc.aio.insecure_channel(address) as channel:
        yield embedder_pb2_grpc.EmbedderStub(channel)
