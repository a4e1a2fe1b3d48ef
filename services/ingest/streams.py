"""Read sync or async iterables in chunks without blocking the event loop."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import TypeVar

T = TypeVar("T")


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
