"""The micro-batcher's waiting policy: an idle batch waits only for requests on their way."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.embedder.batcher import MicroBatcher

LONG_WAIT_S = 30.0  # a batch that waited this long would fail the test's much shorter timeout


@pytest.fixture
def batches():
    """A batcher with a long max wait, and the batches its model saw."""
    seen: list[list[str]] = []

    def run_batch(items: list[str]) -> list[str]:
        seen.append(list(items))
        return [f"v:{item}" for item in items]

    executor = ThreadPoolExecutor(1)
    batcher: MicroBatcher[str, str] = MicroBatcher(
        run_batch, max_batch=8, max_wait_s=LONG_WAIT_S, max_queue=64, executor=executor, kind="test"
    )
    yield batcher, seen
    executor.shutdown(wait=True)


async def test_a_lone_request_starts_without_waiting(batches):
    batcher, seen = batches
    try:
        assert await asyncio.wait_for(batcher.submit(["alone"]), timeout=5.0) == ["v:alone"]
    finally:
        await batcher.close()
    assert seen == [["alone"]]


async def test_an_announced_request_joins_the_batch(batches):
    batcher, seen = batches
    try:
        with batcher.announced() as first, batcher.announced() as second:
            assert batcher.on_the_way == 2
            early = asyncio.ensure_future(batcher.submit(["a"], first))
            await asyncio.sleep(0.2)  # the worker holds "a" back: "b" is still being prepared
            assert seen == []
            late = asyncio.ensure_future(batcher.submit(["b"], second))
            results = await asyncio.wait_for(asyncio.gather(early, late), timeout=5.0)
        assert results == [["v:a"], ["v:b"]]
        assert batcher.on_the_way == 0
    finally:
        await batcher.close()
    assert seen == [["a", "b"]]


async def test_a_withdrawn_announcement_releases_the_waiting_batch(batches):
    batcher, seen = batches
    try:
        with batcher.announced() as first:
            with batcher.announced():  # this request fails before it submits (a bad image, say)
                early = asyncio.ensure_future(batcher.submit(["a"], first))
                await asyncio.sleep(0.2)
                assert seen == []
            assert await asyncio.wait_for(early, timeout=5.0) == ["v:a"]
        assert batcher.on_the_way == 0
    finally:
        await batcher.close()
    assert seen == [["a"]]
