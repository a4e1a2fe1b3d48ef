"""Scenario 1: find the embedder's capacity, hold 80% of it, then offer 150%.

The embedder runs as its own process with an admission limit (``max_concurrent_rpcs``). At 80% of
the measured capacity every call succeeds; at 150% the excess is refused at once with
RESOURCE_EXHAUSTED (in the gRPC core, before any Python work), memory stays flat, and a normal call
succeeds right after. Every phase is bounded in time (seconds) and in calls.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import grpc
import pytest

from tests.reliability.figures import code_counts, latency_summary, record
from tests.reliability.load import Outcome, closed_loop, open_loop, throughput
from tests.reliability.processes import kill_tree, log_tail, start_embedder, wait_health
from tests.support.images import solid
from tests.support.procs import free_port
from vitrine.v1 import embedder_pb2, embedder_pb2_grpc

pytestmark = pytest.mark.slow

ADMISSION_LIMIT = 32  # embedder_server.max_concurrent_rpcs for this run
RAMP = (1, 2, 4, 8, 16, 32)
RAMP_PHASE_S = 2.0
HOLD_S = 5.0
OVERLOAD_S = 4.0
MAX_CALLS_PER_PHASE = 4000
IMAGES_PER_CALL = 16
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _phase(outcomes: list[Outcome], duration_s: float) -> dict:
    ok = [o.latency_s for o in outcomes if o.code == grpc.StatusCode.OK]
    refused = [o.latency_s for o in outcomes if o.code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    return {
        "calls": len(outcomes),
        "codes": code_counts([o.code for o in outcomes]),
        "ok_per_s": round(throughput(outcomes, duration_s), 1),
        "ok_latency": latency_summary(ok),
        "refused_latency": latency_summary(refused),
    }


async def _run_load(stub: embedder_pb2_grpc.EmbedderStub, pid: int) -> dict:
    request = embedder_pb2.EmbedImagesRequest(
        images=[solid(COLOURS[i % len(COLOURS)]) for i in range(IMAGES_PER_CALL)]
    )

    async def call() -> object:
        return await stub.EmbedImages(request, timeout=10)

    await closed_loop(call, 2, 1.0, 50)  # warm up
    ramp = {}
    for concurrency in RAMP:
        outcomes = await closed_loop(call, concurrency, RAMP_PHASE_S, MAX_CALLS_PER_PHASE)
        ramp[concurrency] = _phase(outcomes, RAMP_PHASE_S)
    capacity = max(phase["ok_per_s"] for phase in ramp.values())
    rss_before = rss_mb(pid)
    hold = _phase(await open_loop(call, 0.8 * capacity, HOLD_S), HOLD_S)
    overload = _phase(await open_loop(call, 1.5 * capacity, OVERLOAD_S), OVERLOAD_S)
    rss_after = rss_mb(pid)
    after = await timed_normal_call(call)
    return {
        "admission_limit": ADMISSION_LIMIT,
        "images_per_call": IMAGES_PER_CALL,
        "ramp": {
            str(c): {"ok_per_s": p["ok_per_s"], "p99_ms": p["ok_latency"].get("p99_ms")}
            for c, p in ramp.items()
        },
        "capacity_calls_per_s": capacity,
        "capacity_images_per_s": round(capacity * IMAGES_PER_CALL, 1),
        "hold_80pct": {"offered_per_s": round(0.8 * capacity, 1), **hold},
        "overload_150pct": {"offered_per_s": round(1.5 * capacity, 1), **overload},
        "rss_mb_before_overload": round(rss_before, 1),
        "rss_mb_after_overload": round(rss_after, 1),
        "normal_call_after_overload": after,
    }


async def timed_normal_call(call) -> str:
    """Status of one ordinary call once the overload is over."""
    try:
        await call()
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return "OK"


@pytest.mark.load
async def test_capacity_hold_and_overload(random_bundle, tmp_path):
    port = free_port()
    log = tmp_path / "embedder.log"
    env = {
        "VITRINE_EMBEDDER_SERVER_MAX_CONCURRENT_RPCS": str(ADMISSION_LIMIT),
        "VITRINE_LOG_LEVEL": "WARNING",
    }
    embedder = start_embedder(random_bundle, port, log, env)
    try:
        await asyncio.to_thread(wait_health, f"127.0.0.1:{port}", embedder, log)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            figures = await _run_load(embedder_pb2_grpc.EmbedderStub(channel), embedder.pid)
        embedder.send_signal(signal.SIGTERM)
        figures["exit_code"] = await asyncio.to_thread(embedder.wait, 60)
    finally:
        if embedder.poll() is None:
            kill_tree(embedder)
    record("load", figures)
    hold, overload = figures["hold_80pct"], figures["overload_150pct"]
    assert embedder.returncode == 0, log_tail(log)
    assert figures["capacity_calls_per_s"] > 0
    assert hold["codes"] == {"OK": hold["calls"]}, hold["codes"]
    assert set(overload["codes"]) == {"OK", "RESOURCE_EXHAUSTED"}, overload["codes"]
    assert overload["refused_latency"]["p99_ms"] < 100  # refused at once, not after queueing
    assert figures["rss_mb_after_overload"] - figures["rss_mb_before_overload"] < 200
    assert figures["normal_call_after_overload"] == "OK"
