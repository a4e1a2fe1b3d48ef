"""Bulk load (``load --bulk``): indexing off during the upload, one build, same search results as streaming."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from domain.schema import FASHION_SCHEMA
from services.common.config import IngestConfig, SearchConfig, StoreConfig
from services.ingest.__main__ import parse_args
from services.ingest.core import IngestCore
from services.ingest.loader import iter_catalog, load_direct
from services.search.core import SearchCore
from services.search.model import SearchOptions
from services.storage.blobs import FileBlobStore
from services.storage.factory import open_store
from services.storage.port import VectorStore
from tests.ingest.conftest import ColourEmbedder, write_tiny_bundle
from tests.support.images import solid

ITEMS = 80
# tiny thresholds so that the 80 items get a real HNSW index and filtered queries use it
SMALL_INDEX = {"hnsw_full_scan_threshold_kb": 1, "indexing_threshold_kb": 1, "hnsw_m": 8}


def catalog_folder(root: Path) -> Path:
    """A plain catalog.jsonl of ITEMS products with solid images of random colours."""
    rng = np.random.default_rng(5)
    (root / "images").mkdir(parents=True)
    with (root / "catalog.jsonl").open("w") as fh:
        for i in range(ITEMS):
            colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
            (root / "images" / f"{i}.jpg").write_bytes(solid(colour, size=(16, 16)))
            row = {"id": f"p{i}", "image": f"images/{i}.jpg", "text": f"item {i}", "gender": "MW"[i % 2]}
            fh.write(json.dumps(row) + "\n")
    return root


def store_config(backend: str, path: Path) -> StoreConfig:
    if backend == "edge":
        return StoreConfig(backend="edge", path=str(path), **SMALL_INDEX)
    return StoreConfig(backend="qdrant", url=":memory:", **SMALL_INDEX)


def ingest_core(store, tmp: Path, folder: Path, bundle, batch_size: int = 16) -> IngestCore:
    """An opened ingest core over ``store`` with a colour embedder and blobs under ``tmp``."""
    cfg = IngestConfig(allowed_image_root=str(folder), batch_size=batch_size, queue_batches=2)
    embed = ColourEmbedder({m.name: m.dim for m in bundle.members})
    core = IngestCore(store, bundle, embed, cfg, "catalog", FileBlobStore(tmp / "blobs"), FASHION_SCHEMA)
    core.open()
    return core


def failing_catalog(folder: Path, limit: int):
    """The first ``limit`` products of the catalog, then the disk goes away."""
    yield from iter_catalog(folder, limit=limit)
    raise OSError("catalog disk went away")


async def loaded(backend: str, tmp: Path, folder: Path, bundle, bulk: bool) -> tuple[VectorStore, IngestCore]:
    store = open_store(store_config(backend, tmp / "store"))
    core = ingest_core(store, tmp, folder, bundle)
    report = await load_direct(core, iter_catalog(folder), total=ITEMS, bulk=bulk)
    assert (report.upserted, report.failed) == (ITEMS, 0)
    return store, core


def probes(dims: dict[str, int]) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(11)
    out = []
    for _ in range(12):
        rgb = rng.random(3)
        out.append(
            {m: (v := np.resize(np.concatenate([rgb, [0.1]]), d).astype(np.float32)) / np.linalg.norm(v)
             for m, d in dims.items()}
        )  # fmt: skip
    return out


@pytest.mark.parametrize("backend", ["edge", "qdrant"])
async def test_bulk_load_gives_the_same_results_as_streaming(backend, tmp_path):
    folder = catalog_folder(tmp_path / "catalog")
    bundle = write_tiny_bundle(tmp_path / "bundle")
    streamed, streamed_core = await loaded(backend, tmp_path / "streamed", folder, bundle, bulk=False)
    bulk, bulk_core = await loaded(backend, tmp_path / "bulk", folder, bundle, bulk=True)
    try:
        assert bulk.count(bulk_core.collection) == streamed.count(streamed_core.collection) == ITEMS
        # indexing is back on with the configured settings after the bulk load
        assert bulk.index_settings(bulk_core.collection) == streamed.index_settings(streamed_core.collection)
        if backend == "edge":  # qdrant-client's local mode keeps no index and reports its defaults
            assert bulk.index_settings(bulk_core.collection).m == SMALL_INDEX["hnsw_m"]
            for store, core in ((streamed, streamed_core), (bulk, bulk_core)):
                assert store.inner._shard(core.collection)[1].info().indexed_vectors_count > 0
        dims = {m.name: m.dim for m in bundle.members}
        cores = [
            SearchCore(SearchConfig(), s, bundle, ColourEmbedder(dims), "catalog") for s in (streamed, bulk)
        ]
        for query in probes(dims):
            for options in (SearchOptions(top_k=10), SearchOptions(top_k=10, filters={"gender": "W"})):
                a, b = [await core.search_vectors(query, options) for core in cores]
                assert [h.id for h in a.hits] == [h.id for h in b.hits] and len(a.hits) == 10
                assert [h.score for h in a.hits] == pytest.approx([h.score for h in b.hits], rel=1e-5)
    finally:
        streamed.close()
        bulk.close()


async def test_a_failed_bulk_load_switches_indexing_back_on(tmp_path):
    folder = catalog_folder(tmp_path / "catalog")
    bundle = write_tiny_bundle(tmp_path / "bundle")
    store = open_store(store_config("edge", tmp_path / "store"))
    core = ingest_core(store, tmp_path, folder, bundle)
    try:
        with pytest.raises(OSError, match="went away"):
            await load_direct(core, failing_catalog(folder, 20), bulk=True)
        assert store.index_settings(core.collection).m == SMALL_INDEX["hnsw_m"]
    finally:
        store.close()


def test_cli_bulk_flag():
    args = parse_args(["load", "/data", "--bulk"])
    assert (args.bulk, args.direct) == (True, False)
    assert parse_args(["load", "/data"]).bulk is False


class SlowWrites:
    """A store whose upserts take a while (a slow disk); counts the writes still running."""

    def __init__(self, inner: VectorStore) -> None:
        self.inner = inner
        self.running = 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def upsert(self, collection, points) -> None:
        self.running += 1
        try:
            time.sleep(0.3)
            self.inner.upsert(collection, points)
        finally:
            self.running -= 1


class SlowReads(SlowWrites):
    """A store whose reads by id take a while too (the existence check of ``skip_existing``)."""

    def retrieve(self, collection, ids):
        self.running += 1
        try:
            time.sleep(0.3)
            return self.inner.retrieve(collection, ids)
        finally:
            self.running -= 1


@pytest.mark.parametrize(
    "slow_store, skip_existing",
    [(SlowWrites, False), (SlowReads, True)],
    ids=["store-writes", "existence-checks"],
)
async def test_a_failed_stream_returns_only_after_its_store_calls_end(tmp_path, slow_store, skip_existing):
    folder = catalog_folder(tmp_path / "catalog")
    bundle = write_tiny_bundle(tmp_path / "bundle")
    inner = open_store(store_config("edge", tmp_path / "store"))
    store = slow_store(inner)
    core = ingest_core(store, tmp_path, folder, bundle, batch_size=4)
    try:
        with pytest.raises(OSError, match="went away"):
            await core.upsert_stream(failing_catalog(folder, 12), skip_existing=skip_existing)
        # a store call still running now could race what the caller does next (close, reopen the shard)
        assert store.running == 0
    finally:
        inner.close()
