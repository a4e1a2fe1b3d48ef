"""Cross-cutting server concerns written once: request ids, access logs, metrics, auth."""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from services.common.deadlines import request_deadline

log = logging.getLogger("vitrine.rpc")

RPC_REQUESTS = Counter(
    "vitrine_rpc_requests_total",
    "RPCs handled, by service, method and status code",
    ["service", "method", "code"],
)
RPC_LATENCY = Histogram(
    "vitrine_rpc_latency_seconds",
    "RPC latency, by service and method",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

UNAUTHENTICATED_METHODS_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _split(method: str) -> tuple[str, str]:
    _, _, rest = method.partition("/")
    service, _, name = rest.partition("/")
    return service, name


def _wrap_unary(behavior: Callable, service: str, method: str, token: str) -> Callable:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await _observe(lambda: behavior(request, context), context, service, method, token)

    return wrapper


def _wrap_stream_unary(behavior: Callable, service: str, method: str, token: str) -> Callable:
    async def wrapper(request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        return await _observe(lambda: behavior(request_iterator, context), context, service, method, token)

    return wrapper


def _check_token(context: grpc.aio.ServicerContext, token: str) -> bool:
    metadata = dict(context.invocation_metadata() or ())
    given = metadata.get("authorization", "")
    expected = f"Bearer {token}"
    return hmac.compare_digest(given.encode(), expected.encode())


async def _observe(
    call: Callable[[], Awaitable[Any]],
    context: grpc.aio.ServicerContext,
    service: str,
    method: str,
    token: str,
) -> Any:
    metadata = dict(context.invocation_metadata() or ())
    request_id = metadata.get("x-request-id") or uuid.uuid4().hex[:16]
    start = time.perf_counter()
    code = "OK"
    try:
        if token and not _check_token(context, token):
            code = "UNAUTHENTICATED"
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
        with request_deadline(context.time_remaining()):  # internal calls inherit the caller's deadline
            result = await call()
        status = context.code()
        if status is not None and status != grpc.StatusCode.OK:
            code = status.name
        return result
    except grpc.aio.AbortError:
        status = context.code()
        code = status.name if status is not None else code
        raise
    except Exception:
        code = "UNKNOWN"
        log.exception("unhandled error", extra={"rpc": f"{service}/{method}", "request_id": request_id})
        raise
    finally:
        elapsed = time.perf_counter() - start
        RPC_REQUESTS.labels(service, method, code).inc()
        RPC_LATENCY.labels(service, method).observe(elapsed)
        log.info(
            "rpc",
            extra={
                "rpc": f"{service}/{method}",
                "code": code,
                "ms": round(elapsed * 1000, 2),
                "request_id": request_id,
                "peer": context.peer(),
            },
        )


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """Request id, JSON access log, Prometheus counters/latency, optional bearer-token auth, and the
    caller's deadline recorded for internal calls (see :mod:`services.common.deadlines`).

    Health and reflection stay reachable without a token so probes keep working.
    """

    def __init__(self, auth_token: str = "") -> None:
        self._token = auth_token

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Wrap unary-unary and stream-unary handlers; pass others through."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method_path = handler_call_details.method
        service, method = _split(method_path)
        token = "" if method_path.startswith(UNAUTHENTICATED_METHODS_PREFIXES) else self._token
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, service, method, token),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_stream_unary(handler.stream_unary, service, method, token),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
