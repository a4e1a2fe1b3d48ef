"""Dynamic micro-batching: coalesce items from concurrent requests into model-sized batches.

Requests put their items on one queue; a single worker takes up to ``max_batch`` items and runs
them through ``run_batch`` on one compute thread (the model is not re-entrant and torch
parallelizes inside an op). While a batch runs, the next one fills. A request still being decoded
or tokenized is *announced* (:meth:`MicroBatcher.announced`): an idle worker waits at most
``max_wait_s`` for announced requests to join before it starts a batch, and starts at once when
none is on its way, so a lone query never waits for company that is not coming. Items of
cancelled requests are dropped before they reach the model. A bounded queue turns overload into
a fast ``Overloaded`` error.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prometheus_client import Gauge, Histogram

from services.embedder.errors import Overloaded

T = TypeVar("T")
R = TypeVar("R")

BATCH_SIZE = Histogram(
    "vitrine_embedder_batch_size",
    "Items per model batch",
    ["kind"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
QUEUE_DEPTH = Gauge("vitrine_embedder_queue_depth", "Items waiting for a model batch", ["kind"])


@dataclass
class Announcement:
    """A request on its way to :meth:`MicroBatcher.submit` (see :meth:`MicroBatcher.announced`)."""

    arrived: bool = False


@dataclass
class _Job(Generic[T]):
    item: T
    future: asyncio.Future


class MicroBatcher(Generic[T, R]):
    """Coalesces concurrent ``submit`` calls into batches for ``run_batch``."""

    def __init__(
        self,
        run_batch: Callable[[list[T]], list[R]],
        *,
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        executor: ThreadPoolExecutor,
        kind: str,
        enabled: bool = True,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._max_wait_s = max(0.0, max_wait_s)
        self._max_queue = max_queue
        self._executor = executor
        self._kind = kind
        self._enabled = enabled
        self._queue: collections.deque[_Job[T]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._on_the_way = 0  # announced requests that have not submitted yet

    @property
    def queued(self) -> int:
        """Items waiting to be batched."""
        return len(self._queue)

    @property
    def on_the_way(self) -> int:
        """Announced requests that have not submitted yet."""
        return self._on_the_way

    @contextlib.contextmanager
    def announced(self) -> Iterator[Announcement]:
        """Announce a request that will submit soon (its inputs are being prepared); pass the
        yielded announcement to :meth:`submit`. A request that fails before submitting is
        withdrawn when the block exits."""
        announcement = Announcement()
        self._on_the_way += 1
        try:
            yield announcement
        finally:
            self._arrive(announcement)

    def _arrive(self, announcement: Announcement | None) -> None:
        if announcement is None or announcement.arrived:
            return
        announcement.arrived = True
        self._on_the_way -= 1
        self._wakeup.set()  # a worker waiting for this request stops waiting

    async def submit(self, items: Sequence[T], announcement: Announcement | None = None) -> list[R]:
        """Embed ``items`` as part of whatever batches form; results come back in order.

        ``announcement`` (from :meth:`announced`) marks this request as arrived."""
        self._arrive(announcement)
        if not items:
            return []
        loop = asyncio.get_running_loop()
        if not self._enabled:
            BATCH_SIZE.labels(self._kind).observe(len(items))
            return await loop.run_in_executor(self._executor, self._run_batch, list(items))
        if len(self._queue) + len(items) > self._max_queue:
            raise Overloaded(f"{self._kind} queue is full ({len(self._queue)} items waiting)")
        self._ensure_worker()
        jobs = [_Job(item, loop.create_future()) for item in items]
        self._queue.extend(jobs)
        QUEUE_DEPTH.labels(self._kind).set(len(self._queue))
        self._wakeup.set()
        try:
            return list(await asyncio.gather(*(j.future for j in jobs)))
        except asyncio.CancelledError:
            for job in jobs:
                job.future.cancel()
            raise

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _next_batch(self) -> list[_Job[T]]:
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        deadline = time.monotonic() + self._max_wait_s
        while len(self._queue) < self._max_batch and self._on_the_way > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                break
        batch: list[_Job[T]] = []
        while self._queue and len(batch) < self._max_batch:
            job = self._queue.popleft()
            if not job.future.done():  # cancelled requests are dropped here
                batch.append(job)
        QUEUE_DEPTH.labels(self._kind).set(len(self._queue))
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            BATCH_SIZE.labels(self._kind).observe(len(batch))
            try:
                results: list[Any] = await loop.run_in_executor(
                    self._executor, self._run_batch, [j.item for j in batch]
                )
            except Exception as exc:  # the batch failed as a whole: every request in it learns why
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            for job, result in zip(batch, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)

    async def close(self) -> None:
        """Stop the worker; queued requests fail with CancelledError."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        for job in self._queue:
            job.future.cancel()
        self._queue.clear()
