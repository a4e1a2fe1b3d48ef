"""The blob port's folder adapter, where blobs go per backend, and reindexing byte-pushed products in
server mode (qdrant-client local mode): every product re-embedded from its blob, none failed."""

from __future__ import annotations

import pytest

from domain.payload import collection_name
from services.common.config import BlobsConfig, StoreConfig, load_config
from services.ingest.items import Product
from services.ingest.reindex import reindex
from services.ingest.service import build_core
from services.storage.blobs import FileBlobStore, blob_dir_for, open_blob_store
from services.storage.factory import open_store
from tests.ingest.conftest import BLUE, GREEN, RED, ColourEmbedder, write_tiny_bundle
from tests.support.images import solid


def test_folder_adapter_put_get_exists_delete(tmp_path):
    blobs = FileBlobStore(tmp_path / "blobs")
    assert not blobs.exists("a/../b") and blobs.get("a/../b") is None
    blobs.put("a/../b", b"one")
    blobs.put("a/../b", b"two")
    assert blobs.get("a/../b") == b"two" and blobs.exists("a/../b")
    assert [p.parent for p in (tmp_path / "blobs").iterdir()] == [tmp_path / "blobs"]  # ids never make paths
    assert blobs.delete(["a/../b", "missing"]) == 1 and not blobs.exists("a/../b")


def test_reader_opens_a_missing_folder_without_creating_it(tmp_path):
    reader = FileBlobStore(tmp_path / "not-yet", create=False)
    assert reader.get("p") is None and not (tmp_path / "not-yet").exists()


@pytest.mark.parametrize(
    ("setting", "store", "expected"),
    [
        ("auto", StoreConfig(backend="edge", path="/s"), "/s/blobs"),
        ("auto", StoreConfig(backend="qdrant", url="http://qdrant:6333", path="/s"), "/s/blobs"),
        ("auto", StoreConfig(backend="qdrant", url="path:/q"), "/q/blobs"),
        ("auto", StoreConfig(backend="qdrant", url=":memory:"), None),
        ("/shared/blobs", StoreConfig(backend="qdrant", url="http://qdrant:6333"), "/shared/blobs"),
        ("off", StoreConfig(backend="edge", path="/s"), None),
    ],
)
def test_where_blobs_go(setting, store, expected):
    found = blob_dir_for(BlobsConfig(dir=setting), store)
    assert (str(found) if found else None) == expected


def test_unknown_backend_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown blobs.backend 's4'; valid: \['files'\]"):
        open_blob_store(BlobsConfig(backend="s4"), StoreConfig())


async def test_server_mode_reindex_re_embeds_products_pushed_as_bytes(tmp_path):
    env = {
        "VITRINE_STORE_BACKEND": "qdrant",
        "VITRINE_STORE_URL": ":memory:",
        "VITRINE_BLOBS_DIR": str(tmp_path / "shared-volume"),
        "VITRINE_INGEST_ALLOWED_IMAGE_ROOT": str(tmp_path),
        "VITRINE_INGEST_BATCH_SIZE": "4",
    }
    cfg = load_config(env=env)
    store = open_store(cfg.store)
    old, new = write_tiny_bundle(tmp_path / "v1", "1"), write_tiny_bundle(tmp_path / "v2", "2")
    embed = ColourEmbedder({m.name: m.dim for m in old.members})
    try:
        core = build_core(cfg, store, old, embed)
        core.open()
        colours = [RED, GREEN, BLUE]
        products = [Product(f"p{i}", image=solid(colours[i % 3]), text=f"item {i}") for i in range(10)]
        first = await core.upsert_stream(products)
        assert (first.upserted, first.failed) == (10, 0)
        assert all(core.blobs.exists(p.id) for p in products)

        upgraded = build_core(cfg, store, new, embed)
        upgraded.open()
        result = await reindex(upgraded)
        assert (result.summary.upserted, result.summary.failed) == (10, 0)
        assert result.old_collection == collection_name("catalog", "tiny", "1")
        assert result.new_collection == collection_name("catalog", "tiny", "2")
        assert store.resolve_alias("catalog") == result.new_collection
        stored = store.retrieve("catalog", [p.id for p in products])
        assert sorted(p.id for p in stored) == sorted(p.id for p in products)
        assert {p.payload["bundle_version"] for p in stored} == {"2"}
        assert {p.payload["text"] for p in stored} == {p.text for p in products}
    finally:
        store.close()
