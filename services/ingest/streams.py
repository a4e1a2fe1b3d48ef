"""Read sync or async iterables in chunks without blocking the event loop."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


async def to_thread_to_the_end(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread. A cancelled caller still waits for the thread to end
    (cancelling cannot stop a thread), so that a failed stream leaves no store call running when
    it returns: its caller may close or reopen the store next."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # retrieved: the cancellation is what propagates
        raise


async def aiter_chunks(source: AsyncIterable[T] | Iterable[T], size: int) -> AsyncIterator[list[T]]:
    """Lists of up to ``size`` items; a sync iterable is pulled in a worker thread (it may do I/O)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    if isinstance(source, AsyncIterable):
        chunk: list[T] = []
        async for item in source:
            chunk.append(item)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        return
    iterator = iter(source)
    while chunk := await asyncio.to_thread(lambda: list(itertools.islice(iterator, size))):
        yield chunk
