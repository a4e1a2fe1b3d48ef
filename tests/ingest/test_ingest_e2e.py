"""End to end on loopback: Ingest server -> real Embedder server (random-init open_clip bundle) -> Edge."""

from __future__ import annotations

import grpc
import pytest

from domain.bundle import load_bundle
from services.common.config import IngestConfig, ServerConfig, StoreConfig
from services.common.embed_client import EmbedderClient, EmbedderUnavailable, EmbedRejected
from services.common.server import GrpcServer, ServiceBinding
from services.ingest.core import EmbedderMismatch, IngestCore
from services.ingest.server import SERVICE_NAME, IngestServicer
from services.ingest.service import check_embedder_bundle
from services.storage.factory import open_store
from services.storage.port import MemberQuery
from tests.ingest.conftest import truncated_jpeg, write_tiny_bundle
from tests.support.images import encode, gradient, solid
from vitrine.v1 import ingest_pb2, ingest_pb2_grpc

IMAGES = {
    "red": solid((220, 20, 20)),
    "green": solid((20, 220, 20)),
    "grad": encode(gradient()),
    "grad-flipped": encode(gradient().transpose(0)),
}


@pytest.fixture
async def embed_client(embedder_server):
    _, address = embedder_server
    client = EmbedderClient(grpc.aio.insecure_channel(address), timeout_s=30.0)
    yield client
    await client.close()


async def test_ingest_through_real_embedder(embed_client, random_bundle, tmp_path):
    bundle = load_bundle(random_bundle)
    await check_embedder_bundle(embed_client, bundle)
    store = open_store(StoreConfig(backend="edge", path=str(tmp_path / "store")))
    core = IngestCore(store, bundle, embed_client, IngestConfig(allowed_image_root=str(tmp_path)), "catalog")
    core.open()
    server = GrpcServer(
        ServerConfig(port=0, grace_s=1.0),
        [ServiceBinding(SERVICE_NAME, ingest_pb2_grpc.add_IngestServicer_to_server, IngestServicer(core))],
    )
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = ingest_pb2_grpc.IngestStub(channel)

            async def stream():
                for name, data in IMAGES.items():
                    yield ingest_pb2.Product(id=name, image=data, text=f"{name} item")
                yield ingest_pb2.Product(id="cut", image=truncated_jpeg())

            summary = await stub.Upsert(stream())
        assert (summary.upserted, summary.failed) == (4, 1)
        assert summary.errors[0].id == "cut" and summary.errors[0].code == "INVALID_ARGUMENT"
        assert store.count("catalog") == 4
        (vectors,) = await embed_client([IMAGES["grad"]])
        hits = store.query("catalog", [MemberQuery(m, v, 2) for m, v in vectors.items()])
        for member in bundle.member_names:
            assert hits[member][0].id == "grad" and hits[member][0].score == pytest.approx(1.0, abs=1e-4)
            assert hits[member][0].payload["cluster"] == {m: -1 for m in bundle.member_names}
    finally:
        await server.stop(0)
        store.close()


async def test_embed_client_errors(embed_client, tmp_path):
    with pytest.raises(EmbedRejected):
        await embed_client([b"\x89PNG\r\n"])
    with pytest.raises(EmbedderMismatch, match="embedder serves"):
        await check_embedder_bundle(embed_client, write_tiny_bundle(tmp_path / "other"))
    dead = EmbedderClient(grpc.aio.insecure_channel("127.0.0.1:1"), timeout_s=0.5)
    with pytest.raises(EmbedderUnavailable, match="DEADLINE_EXCEEDED|UNAVAILABLE"):
        await dead([IMAGES["red"]])
    await dead.close()
