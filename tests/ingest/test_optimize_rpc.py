"""Ingest.Optimize over loopback gRPC: a load through the RPC leaves the Edge graph unbuilt; the
call builds it, for what search reads, and search answers the same afterwards."""

from __future__ import annotations

import pytest

from services.common.config import SearchConfig
from services.ingest.loader import build_indexes_via_rpc, iter_catalog, load_via_rpc
from services.search.core import SearchCore
from services.search.model import SearchOptions
from services.storage.factory import open_store
from tests.ingest.conftest import ColourEmbedder, serving_ingest, write_tiny_bundle
from tests.ingest.test_bulk_load import ITEMS, catalog_folder, ingest_core, probes, store_config
from vitrine.v1 import ingest_pb2, ingest_pb2_grpc


@pytest.mark.parametrize("backend", ["edge", "qdrant"])
async def test_optimize_builds_the_index_a_streamed_load_left_unbuilt(backend, tmp_path, capsys):
    folder = catalog_folder(tmp_path / "catalog")
    bundle = write_tiny_bundle(tmp_path / "bundle")
    store = open_store(store_config(backend, tmp_path / "store"))
    core = ingest_core(store, tmp_path, folder, bundle)
    dims = {m.name: m.dim for m in bundle.members}
    search = SearchCore(SearchConfig(), store, bundle, ColourEmbedder(dims), "catalog")
    try:
        async with serving_ingest(core) as channel:
            report = await load_via_rpc(channel, iter_catalog(folder), stream_size=32)
            assert (report.upserted, report.failed) == (ITEMS, 0)
            if backend == "edge":  # upserts alone leave every vector to a full scan
                assert store.inner._shard(core.collection)[1].info().indexed_vectors_count == 0
            before = [await search.search_vectors(q, SearchOptions(top_k=10)) for q in probes(dims)]

            summary = await build_indexes_via_rpc(channel)
            assert list(summary.collections) == [core.collection]
            assert summary.seconds >= 0.0
            if backend == "edge":  # every member's vector of every item is in a graph now
                assert summary.indexed_vectors == ITEMS * len(dims)
                assert store.inner._shard(core.collection)[1].info().indexed_vectors_count == ITEMS * len(
                    dims
                )
            else:  # qdrant-client's local mode keeps no index and says so
                assert summary.indexed_vectors in (-1, 0)
            assert f"indexes of {core.collection}" in capsys.readouterr().out

            after = [await search.search_vectors(q, SearchOptions(top_k=10)) for q in probes(dims)]
            for a, b in zip(before, after, strict=True):
                assert [h.id for h in a.hits] == [h.id for h in b.hits] and len(a.hits) == 10

            again = await ingest_pb2_grpc.IngestStub(channel).Optimize(
                ingest_pb2.OptimizeRequest(), timeout=60
            )
            assert again.indexed_vectors == summary.indexed_vectors  # a second build finds it done
    finally:
        store.close()
