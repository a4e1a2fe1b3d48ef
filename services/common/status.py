"""Core errors to gRPC status codes, the same way in every servicer.

A servicer lists which of its core's exceptions mean which status code (most specific first); a
call that raises one of them is aborted with that code and the exception's message. Anything else
is a bug, not a dependency failure: it is logged with its traceback and answered INTERNAL, so
clients do not retry it as they would UNAVAILABLE.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc

C = TypeVar("C")
T = TypeVar("T")
StatusTable = Sequence[tuple[type[BaseException], grpc.StatusCode]]


def status_for(exc: BaseException, table: StatusTable) -> grpc.StatusCode | None:
    """The code of the first entry ``exc`` is an instance of, None when none is."""
    return next((code for kind, code in table if isinstance(exc, kind)), None)


async def call_core(
    context: grpc.aio.ServicerContext,
    core: C | None,
    call: Callable[[C], Awaitable[T]],
    table: StatusTable,
    *,
    service: str,
    log: logging.Logger,
) -> T:
    """Run ``call(core)``; UNAVAILABLE while ``core`` is None (starting), core errors by ``table``."""
    if core is None:
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"{service} is starting")
    try:
        return await call(core)
    except Exception as exc:
        code = status_for(exc, table)
        if code is None:
            log.exception(f"{service} failed unexpectedly")
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
        await context.abort(code, str(exc))
    raise AssertionError("unreachable: context.abort raises")


__all__ = ["StatusTable", "call_core", "status_for"]
