"""Scenario 3: lose the embedder under search traffic, bring it back, and drain on SIGTERM.

Search fails fast with UNAVAILABLE while the embedder is gone and reports NOT_SERVING; when an
embedder comes back on the same port, search resumes by itself (no restart). A SIGTERM'd embedder
finishes the requests it already has, refuses new ones and exits 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from services.ingest.loader import iter_catalog, to_proto, with_image_bytes
from tests.reliability.figures import code_counts, latency_summary, record
from tests.reliability.load import Outcome, timed
from tests.reliability.processes import (
    health_status,
    kill_tree,
    log_tail,
    start_embedder,
    start_stack,
    wait_health,
)
from tests.support.images import encode, gradient
from training.data.synthetic import write_synthetic_catalog
from vitrine.v1 import (
    embedder_pb2,
    embedder_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)

pytestmark = pytest.mark.slow

TRAFFIC_INTERVAL_S = 0.05
SEARCH_DEADLINE_S = 2.0
DRAIN_DELAY_S = 1.0


class Traffic:
    """Searches at a steady pace in the background; outcomes are stamped with their start time."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = search_pb2_grpc.SearchStub(self.channel)
        self.outcomes: list[Outcome] = []
        self.begin = time.perf_counter()
        self._task: asyncio.Task | None = None

    def now(self) -> float:
        """Seconds since the traffic started."""
        return time.perf_counter() - self.begin

    async def _run(self, limit: int) -> None:
        for _ in range(limit):
            call = lambda: self.stub.Search(  # noqa: E731
                search_pb2.SearchRequest(text="red dress", top_k=5), timeout=SEARCH_DEADLINE_S
            )
            self.outcomes.append(await timed(call, self.now()))
            await asyncio.sleep(TRAFFIC_INTERVAL_S)

    def start(self, limit: int = 2000) -> None:
        """Begin (at most ``limit`` searches)."""
        self._task = asyncio.ensure_future(self._run(limit))

    async def stop(self) -> None:
        """Stop and close the channel."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.channel.close()

    def first_ok_after(self, start: float) -> float | None:
        """Start time of the first successful search started after ``start``."""
        return next(
            (o.started_s for o in self.outcomes if o.started_s > start and o.code == grpc.StatusCode.OK), None
        )

    def finished_before(self, end: float) -> list[Outcome]:
        """Outcomes of searches that had their answer before ``end``."""
        return [o for o in self.outcomes if o.started_s + o.latency_s < end]

    def between(self, start: float, end: float) -> list[Outcome]:
        """Outcomes of searches started in [start, end)."""
        return [o for o in self.outcomes if start <= o.started_s < end]


async def _until(predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.05) -> float | None:
    """Seconds until ``predicate`` (run in a thread) holds, or None after ``timeout_s``."""
    begin = time.perf_counter()
    while time.perf_counter() - begin < timeout_s:
        if await asyncio.to_thread(predicate):
            return time.perf_counter() - begin
        await asyncio.sleep(step_s)
    return None


async def _load_catalog(address: str, catalog: Path) -> int:
    async def requests():
        for product in with_image_bytes(iter_catalog(catalog)):
            yield to_proto(product)

    async with grpc.aio.insecure_channel(address) as channel:
        summary = await ingest_pb2_grpc.IngestStub(channel).Upsert(requests(), timeout=300)
    return summary.upserted


async def _embedder_outage(stack, bundle: Path, tmp_path: Path) -> tuple[dict, subprocess.Popen]:
    """Kill the embedder under traffic, restart one on its port; returns figures and the new embedder."""
    traffic = Traffic(stack.addr("search"))
    traffic.start()
    replacement: subprocess.Popen | None = None
    try:
        await asyncio.sleep(2.0)
        killed_at = traffic.now()
        os.kill(stack.embedder_pid(), signal.SIGKILL)
        to_not_serving = await _until(lambda: health_status(stack.addr("search")) == "NOT_SERVING", 10)
        await asyncio.sleep(3.0)
        restart_at = traffic.now()
        replacement = start_embedder(
            bundle,
            stack.ports["embedder"],
            tmp_path / "embedder-2.log",
            {"VITRINE_EMBEDDER_SERVER_DRAIN_DELAY_S": str(DRAIN_DELAY_S)},
        )
        await asyncio.to_thread(wait_health, stack.addr("embedder"), replacement, tmp_path / "embedder-2.log")
        serving_at = traffic.now()
        to_serving = await _until(lambda: health_status(stack.addr("search")) == "SERVING", 20)
        first_ok = await _until(lambda: traffic.first_ok_after(serving_at) is not None, 10)
        recovered_at = traffic.first_ok_after(serving_at) if first_ok is not None else None
        await asyncio.sleep(2.0)
        end = traffic.now()
    finally:
        await traffic.stop()
    down = traffic.between(killed_at + 0.5, restart_at)  # the first 0.5 s may still see in-flight answers
    after = traffic.between((recovered_at or end) + 0.01, end)
    figures = {
        "searches": len(traffic.outcomes),
        # a search in flight at the kill may fail; only those answered before it count as "before"
        "before_loss": code_counts([o.code for o in traffic.finished_before(killed_at)]),
        "while_down": code_counts([o.code for o in down]),
        "while_down_failure_latency": latency_summary([o.latency_s for o in down]),
        "health_not_serving_after_s": None if to_not_serving is None else round(to_not_serving, 2),
        "embedder_restart_to_serving_s": round(serving_at - restart_at, 2),
        "search_health_serving_after_embedder_s": None if to_serving is None else round(to_serving, 2),
        "first_ok_after_embedder_serving_s": None
        if recovered_at is None
        else round(recovered_at - serving_at, 2),
        "while_restarting": code_counts([o.code for o in traffic.between(restart_at, serving_at)]),
        "after_recovery": code_counts([o.code for o in after]),
        "stack_restarted": stack.proc.poll() is not None,
    }
    if replacement is None:
        raise RuntimeError("the replacement embedder was not started")
    return figures, replacement


async def _code(call) -> str:
    try:
        await call()
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return "OK"


async def _drain(embedder: subprocess.Popen, address: str, log: Path) -> dict:
    """SIGTERM the embedder with requests in flight: NOT_SERVING for ``DRAIN_DELAY_S`` while still
    answering, then new calls are refused, the in-flight ones finish, and it exits 0."""
    images = [encode(gradient((1024, 1024)), "JPEG")] * 24
    async with grpc.aio.insecure_channel(address) as channel:
        stub = embedder_pb2_grpc.EmbedderStub(channel)
        late = lambda: stub.EmbedTexts(embedder_pb2.EmbedTextsRequest(texts=["late"]), timeout=30)  # noqa: E731
        in_flight = [
            asyncio.ensure_future(
                stub.EmbedImages(embedder_pb2.EmbedImagesRequest(images=images), timeout=60)
            )
            for _ in range(6)
        ]
        await asyncio.sleep(0.3)
        pending_at_sigterm = sum(not f.done() for f in in_flight)
        embedder.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        health_in_delay = await asyncio.to_thread(health_status, address)
        accepted_in_delay = asyncio.ensure_future(_code(late))  # queues behind the in-flight work
        await asyncio.sleep(DRAIN_DELAY_S + 0.3)
        health_after_delay = await asyncio.to_thread(health_status, address)
        call_after_delay = await _code(late)
        results = await asyncio.gather(*in_flight, return_exceptions=True)
        call_in_delay = await accepted_in_delay
    finished = sum(not isinstance(r, BaseException) and len(r.embeddings) == len(images) for r in results)
    try:
        code = await asyncio.to_thread(embedder.wait, 60)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"embedder did not exit after SIGTERM:\n{log_tail(log)}") from exc
    return {
        "drain_delay_s": DRAIN_DELAY_S,
        "in_flight_at_sigterm": pending_at_sigterm,
        "in_flight_finished_ok": finished,
        "requests": len(in_flight),
        "health_during_delay": health_in_delay,
        "new_call_during_delay": call_in_delay,
        "health_after_delay": health_after_delay,
        "new_call_after_delay": call_after_delay,
        "exit_code": code,
    }


async def test_embedder_loss_restart_and_drain(random_bundle, tmp_path):
    catalog = write_synthetic_catalog(tmp_path / "catalog", count=120, seed=9)
    stack = start_stack(random_bundle, tmp_path / "store", tmp_path / "stack.log")
    replacement = None
    try:
        loaded = await _load_catalog(stack.addr("ingest"), catalog)
        async with grpc.aio.insecure_channel(stack.addr("ingest")) as channel:
            count = (
                await ingest_pb2_grpc.IngestStub(channel).Count(ingest_pb2.CountRequest(), timeout=10)
            ).count
        outage, replacement = await _embedder_outage(stack, random_bundle, tmp_path)
        drain = await _drain(replacement, stack.addr("embedder"), tmp_path / "embedder-2.log")
        stack_exit = stack.stop()
    finally:
        kill_tree(stack.proc)
        if replacement is not None and replacement.poll() is None:
            kill_tree(replacement)
    record("dependency_loss", {"loaded": loaded, **outage, "stack_exit_code": stack_exit})
    record("sigterm_drain", drain)
    assert loaded == count == 120
    assert (
        outage["before_loss"] == {"OK": outage["before_loss"].get("OK", 0)}
        and outage["before_loss"]["OK"] > 10
    )
    assert set(outage["while_down"]) == {"UNAVAILABLE"}, outage["while_down"]
    assert outage["while_down_failure_latency"]["p99_ms"] < 1000  # fails fast, well inside the 2 s deadline
    assert outage["health_not_serving_after_s"] is not None and outage["health_not_serving_after_s"] < 5
    assert outage["search_health_serving_after_embedder_s"] is not None
    assert (
        outage["first_ok_after_embedder_serving_s"] is not None
        and outage["first_ok_after_embedder_serving_s"] < 10
    )
    assert set(outage["after_recovery"]) == {"OK"}
    assert not outage["stack_restarted"]
    assert drain["in_flight_at_sigterm"] >= 1
    assert drain["in_flight_finished_ok"] == drain["requests"]
    assert (drain["health_during_delay"], drain["new_call_during_delay"]) == ("NOT_SERVING", "OK")
    assert (drain["health_after_delay"], drain["new_call_after_delay"]) == ("UNAVAILABLE", "UNAVAILABLE")
    assert drain["exit_code"] == 0
    assert stack_exit == 0
