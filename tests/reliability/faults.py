"""A server interceptor that injects faults into the embedder's RPCs and records what it saw."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc

EMBEDDER_METHODS = "/vitrine.v1.Embedder/"


class EmbedderFaults(grpc.aio.ServerInterceptor):
    """Fail every ``fail_every``-th embedder call with UNAVAILABLE and/or delay every call by ``delay_s``.

    Failing every n-th call (rather than at random) injects exactly 1/n faults and never fails the
    same retried call twice in a row under light concurrency, so a run is reproducible. Records the
    deadline each call arrived with and how many delayed calls were cancelled by their caller.
    """

    def __init__(self, fail_every: int = 0, delay_s: float = 0.0, methods: str = EMBEDDER_METHODS) -> None:
        if fail_every < 0 or delay_s < 0:
            raise ValueError(f"fail_every and delay_s must be >= 0, got {fail_every}, {delay_s}")
        self.fail_every = fail_every
        self.delay_s = delay_s
        self.methods = methods
        self.calls = 0
        self.injected = 0
        self.cancelled = 0
        self.passed = 0
        self.time_remaining: list[float | None] = []

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Wrap the embedder's unary handlers; leave health and reflection alone."""
        handler = await continuation(handler_call_details)
        if (
            handler is None
            or handler.unary_unary is None
            or not handler_call_details.method.startswith(self.methods)
        ):
            return handler
        inner = handler.unary_unary

        async def faulty(request, context: grpc.aio.ServicerContext):
            self.calls += 1
            self.time_remaining.append(context.time_remaining())
            if self.fail_every and self.calls % self.fail_every == 0:
                self.injected += 1
                await context.abort(grpc.StatusCode.UNAVAILABLE, "injected fault")
            if self.delay_s:
                try:
                    await asyncio.sleep(self.delay_s)
                except asyncio.CancelledError:
                    self.cancelled += 1
                    raise
            self.passed += 1
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            faulty,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


__all__ = ["EMBEDDER_METHODS", "EmbedderFaults"]
