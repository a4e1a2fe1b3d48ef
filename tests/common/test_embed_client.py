"""The shared embedder client against a real loopback embedder (random-init bundle)."""

from __future__ import annotations

import dataclasses

import grpc
import numpy as np
import pytest

from services.common.config import IngestConfig, VitrineConfig
from services.common.embed_client import EmbedderClient, EmbedderTimeout, EmbedderUnavailable, EmbedRejected
from services.ingest.service import embedder_client
from tests.support.images import solid
from tests.support.procs import free_port


async def test_texts_and_images_give_unit_vectors_per_member(embedder_server):
    _, address = embedder_server
    client = EmbedderClient.connect(address, 20.0)
    try:
        texts = await client.embed_texts(["red dress", "blue jeans"])
        assert len(texts) == 2 and set(texts[0]) == {"m1", "m2"}
        assert texts[0]["m1"].shape == (32,) and texts[0]["m2"].shape == (48,)
        assert texts[0]["m1"].dtype == np.float32
        assert np.linalg.norm(texts[1]["m2"]) == pytest.approx(1.0, abs=1e-4)
        images = await client.embed_images([solid((10, 200, 10))], members=["m2"], timeout=20.0)
        assert list(images[0]) == ["m2"]
        info = await client.bundle_info()
        assert (info.name, [m.name for m in info.members]) == ("test-random", ["m1", "m2"])
    finally:
        await client.close()


async def test_rejected_input_and_unreachable_embedder(embedder_server):
    _, address = embedder_server
    client = EmbedderClient.connect(address, 20.0)
    try:
        with pytest.raises(EmbedRejected):
            await client.embed_images([b"definitely not an image"])
    finally:
        await client.close()
    nowhere = f"127.0.0.1:{free_port()}"
    fail_fast = EmbedderClient.connect(nowhere, 5.0, wait_for_ready=False)
    try:
        with pytest.raises(EmbedderUnavailable) as info:
            await fail_fast.embed_texts(["x"])
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
        assert not isinstance(info.value, EmbedderTimeout)
    finally:
        await fail_fast.close()
    waiting = EmbedderClient.connect(nowhere, 0.3)
    try:
        with pytest.raises(EmbedderTimeout):
            await waiting.embed_texts(["x"])
    finally:
        await waiting.close()


async def test_ingest_builds_the_shared_client_from_its_config(embedder_server):
    _, address = embedder_server
    ingest = dataclasses.replace(IngestConfig(), embedder_addr=address, rpc_timeout_s=20.0)
    client = embedder_client(VitrineConfig(ingest=ingest))
    try:
        assert isinstance(client, EmbedderClient) and client.timeout_s == 20.0
        vectors = await client([solid(), solid((0, 0, 255))])
        assert len(vectors) == 2 and "m1" in vectors[0]
    finally:
        await client.close()
