"""Readiness that follows dependencies: a server is SERVING only while its upstream is.

``DependencyWatch`` polls an upstream's grpc health service and flips a ``GrpcServer``'s
health status, so search and ingest report NOT_SERVING while the embedder is unreachable and
come back by themselves when it returns (no restart needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

log = logging.getLogger("vitrine.readiness")


async def upstream_serving(channel: grpc.aio.Channel, service: str = "", timeout: float = 1.0) -> bool:
    """True when the upstream's health service answers SERVING for ``service``."""
    try:
        resp = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
    except grpc.aio.AioRpcError:
        return False
    return resp.status == health_pb2.HealthCheckResponse.SERVING


class DependencyWatch:
    """Poll upstream checks every ``interval_s`` and report the combined state through ``set_serving``."""

    def __init__(
        self,
        checks: Sequence[Callable[[], Awaitable[bool]]],
        set_serving: Callable[[bool], Awaitable[None]],
        interval_s: float = 1.0,
    ) -> None:
        self._checks = list(checks)
        self._set_serving = set_serving
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self.serving: bool | None = None

    async def check_once(self) -> bool:
        """Run every check now and publish the result; returns it."""
        results = await asyncio.gather(*(check() for check in self._checks))
        serving = all(results)
        if serving != self.serving:
            log.info("dependencies changed", extra={"serving": serving})
            await self._set_serving(serving)
            self.serving = serving
        return serving

    async def _loop(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self._interval_s)

    def start(self) -> None:
        """Begin polling in the background."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
