"""Bounded load generators: closed loop (N callers back to back) and open loop (a fixed arrival rate).

Every loop is bounded in both time and count; a call returns the gRPC status code it ended with.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

Call = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Outcome:
    """One call: when it started (s since the phase began), how long it took, how it ended."""

    started_s: float
    latency_s: float
    code: grpc.StatusCode


async def timed(call: Call, started_s: float) -> Outcome:
    """Run one call and classify it by status code."""
    start = time.perf_counter()
    try:
        await call()
        code = grpc.StatusCode.OK
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
    return Outcome(started_s, time.perf_counter() - start, code)


async def closed_loop(call: Call, concurrency: int, duration_s: float, max_calls: int) -> list[Outcome]:
    """``concurrency`` callers, each calling again as soon as its call ends, until time or count run out."""
    outcomes: list[Outcome] = []
    begin = time.perf_counter()

    async def caller() -> None:
        while time.perf_counter() - begin < duration_s and len(outcomes) < max_calls:
            outcomes.append(await timed(call, time.perf_counter() - begin))

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return outcomes


async def open_loop(call: Call, rate_per_s: float, duration_s: float, drain_s: float = 30.0) -> list[Outcome]:
    """Start calls at a fixed rate for ``duration_s`` whatever the server does; wait ``drain_s`` for the rest."""
    total = max(1, int(rate_per_s * duration_s))
    interval = 1.0 / rate_per_s
    begin = time.perf_counter()
    tasks: list[asyncio.Task[Outcome]] = []
    for i in range(total):
        delay = begin + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(timed(call, time.perf_counter() - begin)))
    done, pending = await asyncio.wait(tasks, timeout=drain_s)
    for task in pending:
        task.cancel()
    return [t.result() for t in done]


def throughput(outcomes: list[Outcome], duration_s: float) -> float:
    """Successful calls per second over the phase."""
    return sum(o.code == grpc.StatusCode.OK for o in outcomes) / duration_s


__all__ = ["Call", "Outcome", "closed_loop", "open_loop", "throughput", "timed"]
