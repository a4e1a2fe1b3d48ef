"""Scenario 5: the embedder fails 20% of internal calls with UNAVAILABLE; clients never notice.

The internal channel's retry policy (services/common/channels.py) retries UNAVAILABLE on the
embedder's idempotent methods, and ingest writes uuid5 ids, so a retried batch never duplicates.
"""

from __future__ import annotations

import time

import grpc

from services.ingest.loader import iter_catalog, to_proto
from tests.reliability.faults import EmbedderFaults
from tests.reliability.figures import latency_summary, record
from tests.reliability.harness import inprocess_stack
from training.data.synthetic import write_synthetic_catalog
from vitrine.v1 import ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc

ITEMS = 320
SEARCHES = 100
FAIL_EVERY = 5  # 20% of embedder calls
QUERIES = ("red dress", "blue jeans", "black watch", "green cap", "pink bag", "yellow shoes", "men tshirt")


async def _stream(products):
    for product in products:
        yield to_proto(product)


async def test_injected_unavailable_is_invisible_to_clients(encoder, random_bundle, tmp_path, image_root):
    catalog = write_synthetic_catalog(image_root / "catalog", count=ITEMS, seed=3)
    faults = EmbedderFaults(fail_every=FAIL_EVERY)
    async with inprocess_stack(
        encoder, random_bundle, tmp_path / "store", image_root, embedder_interceptors=[faults]
    ) as stack:
        async with (
            grpc.aio.insecure_channel(stack.addr("ingest")) as ingest_channel,
            grpc.aio.insecure_channel(stack.addr("search")) as search_channel,
        ):
            ingest = ingest_pb2_grpc.IngestStub(ingest_channel)
            search = search_pb2_grpc.SearchStub(search_channel)
            first = await ingest.Upsert(_stream(iter_catalog(catalog)), timeout=120)
            ingest_calls, ingest_injected = faults.calls, faults.injected
            again = await ingest.Upsert(
                _stream(iter_catalog(catalog)), timeout=120
            )  # the client retries a stream
            count = (await ingest.Count(ingest_pb2.CountRequest(), timeout=10)).count
            ids = [p.id for p in iter_catalog(catalog)]
            stored = []
            for start in range(0, len(ids), 200):
                found = await search.GetItems(
                    search_pb2.GetItemsRequest(ids=ids[start : start + 200]), timeout=10
                )
                stored += [h.id for h in found.items]
            before_search = (faults.calls, faults.injected)
            failures: list[str] = []
            latencies: list[float] = []
            for i in range(SEARCHES):
                begin = time.perf_counter()
                try:
                    response = await search.Search(
                        search_pb2.SearchRequest(text=QUERIES[i % len(QUERIES)], top_k=5), timeout=10
                    )
                    if len(response.hits) != 5 or response.partial:
                        failures.append(f"search {i}: {len(response.hits)} hits, partial={response.partial}")
                except grpc.aio.AioRpcError as exc:
                    failures.append(f"search {i}: {exc.code().name}")
                latencies.append(time.perf_counter() - begin)
    search_calls = faults.calls - before_search[0]
    search_injected = faults.injected - before_search[1]
    record(
        "injected_faults",
        {
            "fault_rate": 1 / FAIL_EVERY,
            "ingest_items": ITEMS,
            "ingest_upserted_first_run": first.upserted,
            "ingest_failed": first.failed + again.failed,
            "ingest_embedder_calls": ingest_calls,
            "ingest_faults_injected": ingest_injected,
            "points_after_two_runs": count,
            "distinct_ids_found": len(set(stored)),
            "searches": SEARCHES,
            "search_failures": len(failures),
            "search_embedder_calls": search_calls,
            "search_faults_injected": search_injected,
            "search_latency": latency_summary(latencies),
        },
    )
    assert (first.received, first.upserted, first.failed) == (ITEMS, ITEMS, 0)
    assert (again.upserted, again.failed) == (ITEMS, 0)
    assert ingest_injected > 0 and search_injected >= SEARCHES // FAIL_EVERY - 1
    assert count == ITEMS == len(stored) == len(set(stored))
    assert failures == []
