"""Shared fixtures: tiny bundles and real embedder servers on loopback."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import grpc
import pytest
import torch

from services.common.config import ServerConfig
from services.common.server import GrpcServer, ServiceBinding
from services.embedder.core import EmbedderCore
from services.embedder.encoder import EnsembleEncoder
from services.embedder.server import SERVICE_NAME, EmbedderServicer
from tests.support.bundles import make_random_bundle
from tests.support.embedder import EMBEDDER_TEST_CFG
from vitrine.v1 import embedder_pb2_grpc

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

SHARED_DATA = Path(
    os.environ.get(
        "VITRINE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-product-images"
    )
)


@pytest.fixture(scope="session")
def random_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-member random-init bundle (CLIP + CustomTextCLIP), built once per session."""
    return make_random_bundle(tmp_path_factory.mktemp("random-bundle"))


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(bundle, catalog): three members briefly trained on a synthetic catalog, built once per session."""
    from training.tiny import build_tiny_bundle

    root = tmp_path_factory.mktemp("tiny-trained")
    bundle = build_tiny_bundle(root)
    return bundle, root / "catalog"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared Fashion Product Images folder, or skip when it is absent."""
    if not (SHARED_DATA / "styles.csv").exists():
        pytest.skip(f"shared catalog not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def encoder(random_bundle) -> EnsembleEncoder:
    """The random bundle loaded once."""
    return EnsembleEncoder.load(dataclasses.replace(EMBEDDER_TEST_CFG, bundle=str(random_bundle)))


@pytest.fixture
async def core(encoder):
    """A fresh core (its own batchers and pools) per test."""
    c = EmbedderCore(encoder, EMBEDDER_TEST_CFG)
    yield c
    await c.close()


@pytest.fixture
async def embedder_server(core):
    """A real embedder gRPC server on 127.0.0.1 with health and reflection; yields (server, address)."""
    server = GrpcServer(
        ServerConfig(port=0, grace_s=1.0),
        [
            ServiceBinding(
                SERVICE_NAME, embedder_pb2_grpc.add_EmbedderServicer_to_server, EmbedderServicer(core)
            )
        ],
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
