"""Deadlines everywhere: caller deadlines reach the embedder, cancelled work is dropped, not done."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from services.embedder.batcher import MicroBatcher
from tests.reliability.faults import EmbedderFaults
from tests.reliability.figures import record
from tests.reliability.harness import inprocess_stack
from vitrine.v1 import ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc

# The grpc-timeout header carries few digits and is rounded up (10 s may arrive as 10.1 s).
WIRE_ROUNDING_S = 0.2


async def _one_product(product_id: str):
    yield ingest_pb2.Product(id=product_id, image_uri="ok.jpg", text="Green shirt")


async def _wait_for(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


async def test_batcher_drops_items_of_cancelled_requests():
    seen: list[str] = []
    release = threading.Event()

    def run_batch(items: list[str]) -> list[str]:
        seen.extend(items)
        if "hold" in items:
            release.wait(5)
        return [f"v:{item}" for item in items]

    executor = ThreadPoolExecutor(1)
    batcher: MicroBatcher[str, str] = MicroBatcher(
        run_batch, max_batch=8, max_wait_s=0.0, max_queue=64, executor=executor, kind="test"
    )
    try:
        holder = asyncio.ensure_future(batcher.submit(["hold"]))
        assert await _wait_for(lambda: seen == ["hold"])  # the compute thread is busy now
        doomed = asyncio.ensure_future(batcher.submit(["doomed-1", "doomed-2"]))
        await _wait_for(lambda: batcher.queued == 2)
        doomed.cancel()  # what grpc does when the caller's deadline passes or it hangs up
        kept = asyncio.ensure_future(batcher.submit(["kept"]))
        release.set()
        assert await holder == ["v:hold"]
        assert await kept == ["v:kept"]
        with pytest.raises(asyncio.CancelledError):
            await doomed
    finally:
        release.set()
        await batcher.close()
        executor.shutdown(wait=True)
    assert seen == ["hold", "kept"]


async def test_caller_deadlines_bound_internal_calls(encoder, random_bundle, tmp_path, image_root):
    faults = EmbedderFaults()
    async with inprocess_stack(
        encoder, random_bundle, tmp_path / "store", image_root, embedder_interceptors=[faults]
    ) as stack:
        async with (
            grpc.aio.insecure_channel(stack.addr("search")) as search_channel,
            grpc.aio.insecure_channel(stack.addr("ingest")) as ingest_channel,
        ):
            search = search_pb2_grpc.SearchStub(search_channel)
            ingest = ingest_pb2_grpc.IngestStub(ingest_channel)
            await ingest.Upsert(_one_product("d-1"), timeout=3.0)
            ingest_seen = faults.time_remaining[-1]
            await search.Search(search_pb2.SearchRequest(text="shirt"), timeout=1.5)
            search_seen = faults.time_remaining[-1]
            await search.Search(search_pb2.SearchRequest(text="shirt"))
            no_deadline_seen = faults.time_remaining[-1]
    record(
        "deadline_propagation",
        {
            "ingest_deadline_s": 3.0,
            "embedder_saw_from_ingest_s": round(ingest_seen, 3),
            "search_deadline_s": 1.5,
            "embedder_saw_from_search_s": round(search_seen, 3),
            "embedder_saw_without_client_deadline_s": round(no_deadline_seen, 3),
        },
    )
    assert 0 < ingest_seen <= 3.0 + WIRE_ROUNDING_S  # without propagation ingest would allow its own 30 s
    assert 0 < search_seen <= 1.5 + WIRE_ROUNDING_S
    assert 0 < no_deadline_seen <= 10.0 + WIRE_ROUNDING_S  # search's own rpc_timeout_s still bounds it


async def test_missed_deadline_cancels_the_embedder_work(encoder, random_bundle, tmp_path, image_root):
    faults = EmbedderFaults(delay_s=3.0)
    async with inprocess_stack(
        encoder, random_bundle, tmp_path / "store", image_root, embedder_interceptors=[faults]
    ) as stack:
        async with (
            grpc.aio.insecure_channel(stack.addr("search")) as search_channel,
            grpc.aio.insecure_channel(stack.addr("ingest")) as ingest_channel,
        ):
            search = search_pb2_grpc.SearchStub(search_channel)
            ingest = ingest_pb2_grpc.IngestStub(ingest_channel)
            codes: dict[str, grpc.StatusCode] = {}
            took: dict[str, float] = {}
            for name, call in {
                "search": lambda: search.Search(search_pb2.SearchRequest(text="shirt"), timeout=0.5),
                "ingest": lambda: ingest.Upsert(_one_product("late-1"), timeout=0.8),
            }.items():
                start = time.perf_counter()
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call()
                took[name] = time.perf_counter() - start
                codes[name] = err.value.code()
            cancelled = await _wait_for(lambda: faults.cancelled == 2)
            faults.delay_s = 0.0
            count = (await ingest.Count(ingest_pb2.CountRequest(), timeout=10)).count
            recovered = await search.Search(search_pb2.SearchRequest(text="shirt"), timeout=10)
    record(
        "deadline_cancellation",
        {
            "search_deadline_ms": 500,
            "search_failed_after_ms": round(took["search"] * 1000, 1),
            "ingest_deadline_ms": 800,
            "ingest_failed_after_ms": round(took["ingest"] * 1000, 1),
            "embedder_calls_cancelled": faults.cancelled,
            "embedder_calls_that_reached_the_model_while_slow": faults.passed - 1,
        },
    )
    assert codes == {"search": grpc.StatusCode.DEADLINE_EXCEEDED, "ingest": grpc.StatusCode.DEADLINE_EXCEEDED}
    assert took["search"] < 1.5 and took["ingest"] < 1.8
    assert cancelled, f"embedder saw {faults.cancelled} cancellations, expected 2"
    assert count == 0
    assert faults.passed == 1  # only the recovery call ran the model
    assert recovered.hits == [] and not recovered.partial
