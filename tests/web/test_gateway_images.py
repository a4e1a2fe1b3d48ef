"""Product images through the gateway: bytes pushed over the Ingest RPC come back from the blob store.

Real parts on loopback: an Ingest and a Search gRPC server over one Edge store in a temp dir, and
the FastAPI gateway (its lifespan run, so it dials Search over gRPC) called through httpx.
"""

from __future__ import annotations

import grpc
import httpx
import pytest

from services.common.config import IngestConfig, SearchConfig, ServerConfig, StoreConfig, WebConfig
from services.common.server import GrpcServer, ServiceBinding
from services.ingest import server as ingest_server
from services.ingest.core import IngestCore
from services.search import server as search_server
from services.search.core import SearchCore
from services.storage.blobs import FileBlobStore
from services.storage.factory import open_store
from services.web.app import create_app
from tests.ingest.conftest import BLUE, GREEN, RED, ColourEmbedder, write_tiny_bundle
from tests.support.images import solid
from vitrine.v1 import ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc


class TextlessEmbedder:
    """Search's embedder in these tests: looking items up never embeds anything."""

    async def embed_texts(self, texts, members=None, timeout=None):
        raise AssertionError("GetItems and the image endpoint never embed text")

    async def embed_images(self, images, members=None, timeout=None):
        raise AssertionError("GetItems and the image endpoint never embed images")


def grpc_server(config_port: int, name: str, add, servicer) -> GrpcServer:
    return GrpcServer(ServerConfig(port=config_port, grace_s=1.0), [ServiceBinding(name, add, servicer)])


@pytest.fixture
async def gateway(tmp_path):
    """(ingest stub, httpx client, image root, blob store, search stub) over running Ingest + Search servers."""
    root = tmp_path / "images"
    root.mkdir()
    bundle = write_tiny_bundle(tmp_path / "bundle")
    store = open_store(StoreConfig(backend="edge", path=str(tmp_path / "store")))
    blobs = FileBlobStore(tmp_path / "store" / "blobs")
    ingest_cfg = IngestConfig(allowed_image_root=str(root), batch_size=4)
    embed = ColourEmbedder({m.name: m.dim for m in bundle.members})
    core = IngestCore(store, bundle, embed, ingest_cfg, "catalog", blobs)
    core.open()
    search = SearchCore(SearchConfig(), store, bundle, TextlessEmbedder(), "catalog")
    servers = [
        grpc_server(
            0,
            ingest_server.SERVICE_NAME,
            ingest_pb2_grpc.add_IngestServicer_to_server,
            ingest_server.IngestServicer(core),
        ),
        grpc_server(
            0,
            search_server.SERVICE_NAME,
            search_pb2_grpc.add_SearchServicer_to_server,
            search_server.SearchServicer(search),
        ),
    ]
    ports = [await s.start() for s in servers]
    for s in servers:
        await s.set_serving(True)
    web = WebConfig(search_addr=f"127.0.0.1:{ports[1]}", image_root=str(root))
    app = create_app(web, FileBlobStore(blobs.directory, create=False))
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
            grpc.aio.insecure_channel(f"127.0.0.1:{ports[0]}") as channel,
        ):
            search_channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports[1]}")
            search_stub = search_pb2_grpc.SearchStub(search_channel)
            yield ingest_pb2_grpc.IngestStub(channel), client, root, blobs, search_stub
            await search_channel.close()
    finally:
        for s in servers:
            await s.stop(0)
        store.close()


async def upsert(stub, products: list[ingest_pb2.Product]) -> ingest_pb2.UpsertSummary:
    async def stream():
        for product in products:
            yield product

    return await stub.Upsert(stream())


def pushed(i: int, colour, fmt: str = "JPEG") -> ingest_pb2.Product:
    return ingest_pb2.Product(
        id=f"p{i}",
        image=solid(colour, fmt=fmt),
        text=f"Colour tee {i}",
        attributes={"articleType": "Tshirts", "baseColour": str(colour)},
    )


async def test_bytes_pushed_over_ingest_come_back_from_the_gateway(gateway):
    stub, client, _, _, _ = gateway
    products = [pushed(0, RED), pushed(1, GREEN, "PNG"), pushed(2, BLUE)]
    summary = await upsert(stub, products)
    assert (summary.upserted, summary.failed) == (3, 0)
    for product, media in zip(products, ["image/jpeg", "image/png", "image/jpeg"], strict=True):
        response = await client.get(f"/api/items/{product.id}/image")
        assert response.status_code == 200, response.text
        assert response.content == product.image
        assert response.headers["content-type"] == media
        assert response.headers["cache-control"].startswith("public, max-age=")
        etag = response.headers["etag"]
        again = await client.get(f"/api/items/{product.id}/image", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag


async def test_etag_changes_when_the_product_is_pushed_with_another_image(gateway):
    stub, client, _, _, _ = gateway
    await upsert(stub, [pushed(0, RED)])
    first = (await client.get("/api/items/p0/image")).headers["etag"]
    await upsert(stub, [pushed(0, BLUE)])
    response = await client.get("/api/items/p0/image", headers={"If-None-Match": first})
    assert response.status_code == 200 and response.content == solid(BLUE)
    assert response.headers["etag"] != first


async def test_image_uri_files_are_served_from_under_the_root_only(gateway, tmp_path):
    stub, client, root, blobs, _ = gateway
    (root / "shirt.png").write_bytes(solid(GREEN, fmt="PNG"))
    outside = tmp_path / "secret.png"
    outside.write_bytes(solid(RED, fmt="PNG"))
    (root / "link.png").symlink_to(outside)
    summary = await upsert(
        stub,
        [
            ingest_pb2.Product(id="by-uri", image_uri=str(root / "shirt.png"), text="green shirt"),
            # pushed as bytes (ingest cannot read the link's target), but the stored uri points outside
            ingest_pb2.Product(id="linked", image=solid(RED), image_uri=str(root / "link.png")),
        ],
    )
    assert (summary.upserted, summary.failed) == (2, 0), summary.errors
    response = await client.get("/api/items/by-uri/image")
    assert response.status_code == 200 and response.content == solid(GREEN, fmt="PNG")
    assert response.headers["content-type"] == "image/png" and response.headers["etag"].startswith('"f-')
    etag = response.headers["etag"]
    cached = await client.get("/api/items/by-uri/image", headers={"If-None-Match": f"W/{etag}"})
    assert cached.status_code == 304
    blobs.delete(["linked"])  # no bytes kept: only the uri is left, and it leads outside the root
    response = await client.get("/api/items/linked/image")
    assert response.status_code == 404
    assert "not a file under the image root" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/items/..%2F..%2Fsecret.png/image",
        "/api/items/a%2F..%2F..%2Fsecret.png/image",
        "/api/items/..%5Csecret.png/image",
        "/api/items/..%2Fsecret.png/image",
        "/api/items/..secret/image",
        "/api/items/x%00y/image",
    ],
)
async def test_ids_with_path_characters_are_404_with_a_reason(gateway, path, tmp_path):
    stub, client, root, _, _ = gateway
    secret = b"outside the image root"
    (tmp_path / "secret.png").write_bytes(secret)
    (root / "shirt.png").write_bytes(solid(GREEN, fmt="PNG"))
    await upsert(stub, [ingest_pb2.Product(id="shirt", image_uri=str(root / "shirt.png"))])
    response = await client.get(path)
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert detail.startswith("item id ") and ("path characters" in detail or "control" in detail), detail
    assert secret not in response.content


async def test_unknown_id_and_product_without_image_are_404(gateway):
    stub, client, _, _, _ = gateway
    response = await client.get("/api/items/nope/image")
    assert (
        response.status_code == 404 and response.json()["detail"] == "unknown item 'nope': not in the catalog"
    )
    response = await client.get("/api/items/nope")
    assert response.status_code == 404


async def test_get_items_and_the_item_endpoint_show_stored_text_and_attributes(gateway):
    stub, client, _, _, search = gateway
    await upsert(stub, [pushed(0, RED)])
    items = (await search.GetItems(search_pb2.GetItemsRequest(ids=["p0", "nope"]))).items
    assert [i.id for i in items] == ["p0"]
    assert items[0].attributes["text"] == "Colour tee 0"
    assert items[0].attributes["articleType"] == "Tshirts"
    response = await client.get("/api/items/p0")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == "Colour tee 0"
    assert body["attributes"]["articleType"] == "Tshirts"
    assert body["attributes"]["baseColour"] == str(RED)
    assert "image_uri" not in body["attributes"] and "text" not in body["attributes"]
    assert body["image_url"] == "/api/items/p0/image"
