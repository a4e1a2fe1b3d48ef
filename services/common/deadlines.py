"""The caller's deadline, carried with the request so internal calls never outlive it.

The server interceptor records the deadline of every incoming RPC in a context variable
(:func:`request_deadline`); asyncio tasks and ``asyncio.to_thread`` calls started while handling
the request inherit it. Internal clients bound their own timeouts with :func:`bounded`, so a
search or ingest call with a 2 s deadline never waits 30 s on the embedder.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_DEADLINE: ContextVar[float | None] = ContextVar("vitrine_request_deadline", default=None)


class DeadlinePassed(TimeoutError):
    """The caller's deadline passed before an internal call could start."""


@contextmanager
def request_deadline(time_remaining: float | None) -> Iterator[None]:
    """Within the block, internal calls are bounded by ``time_remaining`` seconds from now (None: no bound)."""
    deadline = None if time_remaining is None else time.monotonic() + time_remaining
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left before the current request's deadline, or None when it has none."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def bounded(timeout: float) -> float:
    """``timeout`` cut to what is left of the current request's deadline; DeadlinePassed when none is."""
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise DeadlinePassed("the caller's deadline passed before the internal call started")
    return min(timeout, left)


__all__ = ["DeadlinePassed", "bounded", "remaining", "request_deadline"]
