"""``python -m services.search serve`` against a real embedder (random-init bundle) and an Edge store."""

from __future__ import annotations

import asyncio
import signal

import grpc
import pytest

from domain.payload import collection_name
from services.common.config import StoreConfig
from services.common.embed_client import EmbedderClient
from services.storage.factory import open_store
from services.storage.port import Point
from tests.support.images import encode, gradient, solid
from tests.support.procs import free_port, start_module, wait_serving
from vitrine.v1 import search_pb2, search_pb2_grpc

COLOURS = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (20, 40, 210), "white": (250, 250, 250)}


def catalog_images() -> dict[str, bytes]:
    images = {f"solid-{name}": solid(rgb) for name, rgb in COLOURS.items()}
    images["gradient"] = encode(gradient())
    images["gradient-flipped"] = encode(gradient().transpose(0))
    return images


async def load_catalog(address: str, data_dir: str) -> dict[str, bytes]:
    """Embed the images with the real embedder and write them into an Edge store behind the alias."""
    client = EmbedderClient.connect(address, 30.0)
    try:
        info = await client.bundle_info()
        images = catalog_images()
        vectors = await client.embed_images(list(images.values()))
    finally:
        await client.close()
    store = open_store(StoreConfig(backend="edge", path=data_dir))
    collection = collection_name("catalog", info.name, info.version)
    store.ensure_collection(collection, {m.name: m.dim for m in info.members}, ["articleType"])
    points = [
        Point(pid, vecs, {"text": pid.replace("-", " "), "articleType": "Swatch", "cluster": {"m1": i % 2}})
        for i, (pid, vecs) in enumerate(zip(images, vectors, strict=True))
    ]
    store.upsert(collection, points)
    store.swap_alias("catalog", collection)
    store.close()
    return images


async def test_serve_against_a_real_embedder(embedder_server, tmp_path):
    _, embedder_address = embedder_server
    images = await load_catalog(embedder_address, str(tmp_path / "store"))
    port = free_port()
    (tmp_path / "empty.toml").write_text("")  # built-in defaults, whatever config/vitrine.toml says
    env = {
        "VITRINE_CONFIG": str(tmp_path / "empty.toml"),
        "VITRINE_STORE_BACKEND": "edge",
        "VITRINE_STORE_PATH": str(tmp_path / "store"),
    }
    proc = start_module("services.search", ["--port", str(port), "--embedder", embedder_address], env)
    try:
        await asyncio.to_thread(wait_serving, f"127.0.0.1:{port}", proc, 60.0)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = search_pb2_grpc.SearchStub(channel)
            for product_id in ["solid-blue", "gradient"]:
                request = search_pb2.SearchRequest(image=images[product_id], top_k=3, explain=True)
                response = await stub.Search(request, timeout=20)
                assert response.hits[0].id == product_id
                assert response.collection == "catalog__test-random-1" and not response.partial
                assert [m.member for m in response.hits[0].members] == ["m1", "m2"]
                # the query is expanded with its 3 nearest swatches (search.image_expansion), so
                # its cosine with its own stored vector is high but no longer 1
                assert 0.9 < response.hits[0].members[0].score < 1.0 - 1e-3
            text = await stub.Search(search_pb2.SearchRequest(text="a red swatch", top_k=10), timeout=20)
            assert {h.id for h in text.hits} == set(images) and text.fusion == "rrf"
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Search(search_pb2.SearchRequest(image=b"\xff\xd8 broken jpeg"), timeout=20)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert info.value.details().startswith("image: ")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
