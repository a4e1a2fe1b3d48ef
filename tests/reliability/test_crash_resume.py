"""Scenario 2: SIGKILL the stack in the middle of an ingest stream, restart, re-run the same stream.

Ingest flushes the Edge shard at every batch boundary and point ids are uuid5(product id), so the
restarted stack keeps what was written, and the re-run ends with exactly N points, intact payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from services.ingest.loader import iter_catalog, to_proto, with_image_bytes
from tests.reliability.figures import record
from tests.reliability.processes import StackProcess, kill_tree, start_stack
from training.data.synthetic import write_synthetic_catalog
from vitrine.v1 import ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc

BATCH = 64  # the stack's default ingest batch size


async def _count(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        return (await ingest_pb2_grpc.IngestStub(channel).Count(ingest_pb2.CountRequest(), timeout=10)).count


async def _requests(
    products: list, hold_at: int | None, held: asyncio.Event
) -> AsyncIterator[ingest_pb2.Product]:
    for i, product in enumerate(products):
        if i == hold_at:
            held.set()
            await asyncio.sleep(3600)  # keep the stream open until the process dies
        yield to_proto(product)


async def _kill_mid_stream(stack: StackProcess, products: list, kill_at: int, hold: bool) -> dict[str, int]:
    """Stream ``products``; SIGKILL the stack once ``kill_at`` points are stored (the stream still open)."""
    held = asyncio.Event()
    async with grpc.aio.insecure_channel(stack.addr("ingest")) as channel:
        call = ingest_pb2_grpc.IngestStub(channel).Upsert(
            _requests(products, len(products) // 2 if hold else None, held), timeout=600
        )
        upsert = asyncio.ensure_future(call)
        seen = 0
        deadline = time.monotonic() + 240
        while seen < kill_at and time.monotonic() < deadline and not upsert.done():
            await asyncio.sleep(0.05)
            seen = await _count(stack.addr("ingest"))
        if upsert.done():
            raise AssertionError(f"the stream ended before the kill: {upsert.result()}")
        if seen < kill_at:
            raise AssertionError(f"only {seen} points stored after 240 s, wanted {kill_at}")
        killed = kill_tree(stack.proc)
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(upsert, 30)
    return {"points_seen_before_kill": seen, "children_killed": len(killed)}


async def _check_payloads(address: str, catalog: Path) -> tuple[int, list[str]]:
    """Every product of styles.csv comes back once with its stored text and attributes."""
    with (catalog / "styles.csv").open() as fh:
        rows = {row["id"]: row for row in csv.DictReader(fh)}
    ids = list(rows)
    found: list[str] = []
    broken: list[str] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = search_pb2_grpc.SearchStub(channel)
        for start in range(0, len(ids), 200):
            response = await stub.GetItems(
                search_pb2.GetItemsRequest(ids=ids[start : start + 200]), timeout=30
            )
            for hit in response.items:
                found.append(hit.id)
                row = rows[hit.id]
                expected = {k: v for k, v in row.items() if k not in ("id", "productDisplayName") and v}
                expected["text"] = row["productDisplayName"]
                if any(hit.attributes.get(k) != v for k, v in expected.items()):
                    broken.append(hit.id)
    missing = sorted(set(ids) - set(found))
    duplicates = len(found) - len(set(found))
    return duplicates, broken + [f"missing:{m}" for m in missing]


async def _stream_all(address: str, products: list) -> ingest_pb2.IngestSummary:
    held = asyncio.Event()
    async with grpc.aio.insecure_channel(address) as channel:
        return await ingest_pb2_grpc.IngestStub(channel).Upsert(_requests(products, None, held), timeout=600)


async def run_crash_resume(tmp_path: Path, bundle: Path, count: int, kill_at: int, hold: bool) -> dict:
    """The whole scenario; returns its figures."""
    catalog = write_synthetic_catalog(tmp_path / "catalog", count=count, seed=5)
    products = list(with_image_bytes(iter_catalog(catalog)))
    store = tmp_path / "store"
    first = start_stack(bundle, store, tmp_path / "stack-1.log")
    try:
        figures = await _kill_mid_stream(first, products, kill_at, hold)
    finally:
        kill_tree(first.proc)
    start = time.perf_counter()
    second = start_stack(bundle, store, tmp_path / "stack-2.log")
    try:
        figures["restart_to_serving_s"] = round(time.perf_counter() - start, 2)
        figures["points_after_restart"] = await _count(second.addr("ingest"))
        begin = time.perf_counter()
        summary = await _stream_all(second.addr("ingest"), products)
        figures["rerun_s"] = round(time.perf_counter() - begin, 2)
        figures["rerun_upserted"] = summary.upserted
        figures["rerun_failed"] = summary.failed
        figures["points_final"] = await _count(second.addr("ingest"))
        duplicates, broken = await _check_payloads(second.addr("search"), catalog)
        figures["duplicates"] = duplicates
        figures["broken_or_missing_payloads"] = len(broken)
        figures["exit_code_after_sigterm"] = second.stop()
    finally:
        kill_tree(second.proc)
    return {"items": count, **figures}


def _check(figures: dict, count: int) -> None:
    assert figures["children_killed"] == 1  # the embedder child went down with the stack
    # flushed at batch boundaries: everything stored before the kill is still there (at most the
    # batch being written at the moment of the kill may be missing)
    assert figures["points_after_restart"] >= figures["points_seen_before_kill"] - BATCH
    assert figures["points_after_restart"] < count
    assert (figures["rerun_upserted"], figures["rerun_failed"]) == (count, 0)
    assert figures["points_final"] == count
    assert figures["duplicates"] == 0 and figures["broken_or_missing_payloads"] == 0
    assert figures["exit_code_after_sigterm"] == 0


async def test_crash_mid_stream_then_resume_small(random_bundle, tmp_path):
    count = 300
    figures = await run_crash_resume(tmp_path, random_bundle, count, kill_at=2 * BATCH, hold=True)
    record("crash_resume_300", figures)
    _check(figures, count)


@pytest.mark.slow
async def test_crash_mid_stream_then_resume_5k(random_bundle, tmp_path):
    count = 5000
    figures = await run_crash_resume(tmp_path, random_bundle, count, kill_at=2000, hold=False)
    record("crash_resume_5k", figures)
    _check(figures, count)
