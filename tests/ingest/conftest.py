"""Ingest fixtures: a tiny bundle with centroids, a colour embedder, and a core on a real Edge store."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from domain.bundle import Bundle, MemberSpec, load_bundle, write_bundle
from domain.schema import FASHION_SCHEMA
from services.common.config import IngestConfig, ServerConfig, StoreConfig
from services.common.server import GrpcServer, ServiceBinding
from services.ingest.core import IngestCore
from services.ingest.server import SERVICE_NAME, IngestServicer
from services.storage.blobs import FileBlobStore
from services.storage.factory import open_store
from tests.support.images import solid
from vitrine.v1 import ingest_pb2_grpc

# m1 clusters by dominant channel: red, green, blue (unit vectors over [r, g, b, 1]).
CENTROIDS_M1 = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32)
RED, GREEN, BLUE = (220, 20, 20), (20, 220, 20), (20, 20, 220)


def write_tiny_bundle(directory: Path, version: str = "1", m2_dim: int = 3) -> Bundle:
    """Two members: m1 (dim 4, with centroids) and m2 (no centroids)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "centroids").mkdir(exist_ok=True)
    np.save(directory / "centroids" / "m1.npy", CENTROIDS_M1)
    members = (
        MemberSpec(name="m1", arch="colour", dim=4, image_size=8, centroids="centroids/m1.npy"),
        MemberSpec(name="m2", arch="colour", dim=m2_dim, image_size=8),
    )
    write_bundle(Bundle(name="tiny", version=version, members=members), directory)
    return load_bundle(directory)


class ColourEmbedder:
    """Stands in for the Embedder process: decodes each image for real and embeds its mean colour.

    Like the real embedder it rejects a whole request (ValueError) when one image cannot be decoded.
    """

    def __init__(self, dims: dict[str, int], delay_s: float = 0.0) -> None:
        self.dims = dims
        self.delay_s = delay_s
        self.calls: list[int] = []

    def vectors(self, data: bytes) -> dict[str, np.ndarray]:
        with Image.open(io.BytesIO(data)) as img:
            rgb = np.asarray(img.convert("RGB"), dtype=np.float32).reshape(-1, 3).mean(axis=0) / 255.0
        out = {}
        for member, dim in self.dims.items():
            raw = np.resize(np.concatenate([rgb, [0.1]]), dim).astype(np.float32)
            out[member] = raw / np.linalg.norm(raw)
        return out

    async def __call__(self, images: list[bytes]) -> list[dict[str, np.ndarray]]:
        import asyncio

        self.calls.append(len(images))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        try:
            return [self.vectors(data) for data in images]
        except OSError as exc:
            raise ValueError(f"images: cannot decode: {exc}") from exc


def truncated_jpeg() -> bytes:
    """A JPEG whose header is fine (passes the cheap check) but whose data is cut short."""
    data = solid(RED, size=(64, 64))
    return data[: len(data) // 2]


@pytest.fixture
def bundle(tmp_path) -> Bundle:
    return write_tiny_bundle(tmp_path / "bundle")


@pytest.fixture
def image_root(tmp_path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    return root


@pytest.fixture
def make_core(tmp_path, image_root) -> Callable[..., IngestCore]:
    """Build (and open) cores on one Edge store in tmp_path; stores are closed after the test."""
    stores = []

    def factory(bundle: Bundle, embed=None, schema=FASHION_SCHEMA, **ingest_overrides) -> IngestCore:
        if not stores:
            stores.append(open_store(StoreConfig(backend="edge", path=str(tmp_path / "store"))))
        cfg = IngestConfig(
            allowed_image_root=str(image_root), batch_size=4, queue_batches=2, **ingest_overrides
        )
        embed = embed or ColourEmbedder({m.name: m.dim for m in bundle.members})
        blobs = FileBlobStore(tmp_path / "store" / "blobs")
        core = IngestCore(stores[0], bundle, embed, cfg, "catalog", blobs, schema)
        core.open()
        return core

    yield factory
    for store in stores:
        store.close()


@asynccontextmanager
async def serving_ingest(core: IngestCore | None) -> AsyncIterator[grpc.aio.Channel]:
    """An Ingest server over ``core`` (None: still loading) on 127.0.0.1:0, and a channel to it."""
    servicer = IngestServicer(core)
    server = GrpcServer(
        ServerConfig(port=0, grace_s=1.0),
        [ServiceBinding(SERVICE_NAME, ingest_pb2_grpc.add_IngestServicer_to_server, servicer)],
    )
    port = await server.start()
    await server.set_serving(True)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(0)
