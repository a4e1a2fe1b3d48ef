"""A service built from config, run the same way by its ``__main__`` and by the embedded stack.

Each service module has one ``build(cfg)`` that returns a :class:`Service`: its gRPC server (TLS,
token and limits from ``cfg``), the start-up work that makes it ready (bundle check, store, core),
what to close on the way out, and the upstream channel whose health it follows. ``start`` binds
the port (NOT_SERVING), runs the start-up work, then hands readiness to a
:class:`~services.common.readiness.DependencyWatch`, so the service reports NOT_SERVING while
its upstream is down and SERVING again when it returns, however it was started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc

from services.common.config import IngestConfig, SearchConfig, ServerConfig, StoreConfig
from services.common.embed_client import EmbedderClient
from services.common.readiness import DependencyWatch, upstream_serving
from services.common.server import GrpcServer, ServiceBinding
from services.storage.factory import open_store
from services.storage.port import VectorStore

log = logging.getLogger("vitrine.service")

Prepare = Callable[[], Awaitable[Mapping[str, Any]]]
Close = Callable[[], Awaitable[None]]


class Service:
    """A gRPC server, its start-up work, its closers, and the upstreams its readiness follows."""

    def __init__(
        self,
        name: str,
        server: GrpcServer,
        prepare: Prepare,
        *,
        upstreams: Sequence[grpc.aio.Channel] = (),
        close: Sequence[Close] = (),
        watch_interval_s: float = 1.0,
    ) -> None:
        self.name = name
        self.server = server
        self._prepare = prepare
        self._close = list(close)
        self.watch: DependencyWatch | None = None
        if upstreams:
            checks = [lambda channel=channel: upstream_serving(channel) for channel in upstreams]
            self.watch = DependencyWatch(checks, server.set_serving, watch_interval_s)

    async def start(self) -> int:
        """Bind (NOT_SERVING), run the start-up work, then follow the upstreams; returns the port."""
        port = await self.server.start()
        details = await self._prepare()
        if self.watch is None:
            await self.server.set_serving(True)
        else:
            await self.watch.check_once()
            self.watch.start()
        log.info(f"{self.name} ready", extra={"port": port, **details})
        return port

    async def stop(self, grace: float | None = None) -> None:
        """Stop following upstreams, drain the server, close what start-up opened."""
        await self._stop_watch()
        await self.server.stop(grace)
        await self.close()

    async def close(self) -> None:
        """Close clients and stores (in the order given); safe to call more than once."""
        closers, self._close = self._close, []
        for close in closers:
            await close()

    async def _stop_watch(self) -> None:
        if self.watch is not None:
            await self.watch.stop()

    async def serve(self) -> None:
        """The ``__main__`` path: signal handlers, start, run until signalled, then close."""
        self.server.install_signal_handlers()
        try:
            await self.start()
            await self.server.wait_for_termination()
        finally:
            await self._stop_watch()
            await self.server.stop(0)
            await self.close()


def servicer_server(
    cfg: ServerConfig, full_name: str, add_to_server: Callable[[Any, grpc.aio.Server], None], servicer: Any
) -> GrpcServer:
    """The gRPC server of a service that has one servicer (TLS, token and limits from ``cfg``)."""
    return GrpcServer(cfg, [ServiceBinding(full_name, add_to_server, servicer)])


def upstream_embedder(section: IngestConfig | SearchConfig, *, wait_for_ready: bool = True) -> EmbedderClient:
    """The embedder client of a service: address, deadline, TLS and token from its config section."""
    return EmbedderClient.connect(
        section.embedder_addr,
        section.rpc_timeout_s,
        tls_ca=section.embedder_tls_ca,
        auth_token=section.embedder_auth_token,
        wait_for_ready=wait_for_ready,
    )


class ServiceStore:
    """A service's vector store: the one it was given (its caller closes that), else its own.

    Its own store is opened by :meth:`open` (in the service's start-up work) and closed by
    :meth:`close` (one of the service's closers).
    """

    def __init__(self, cfg: StoreConfig, given: VectorStore | None = None) -> None:
        self._cfg = cfg
        self._given = given
        self._own: VectorStore | None = None

    async def open(self) -> VectorStore:
        """The given store, else the service's own (opened on the first call)."""
        if self._given is not None:
            return self._given
        if self._own is None:
            self._own = await asyncio.to_thread(open_store, self._cfg)
        return self._own

    async def close(self) -> None:
        """Close the service's own store, if it opened one; safe to call more than once."""
        own, self._own = self._own, None
        if own is not None:
            await asyncio.to_thread(own.close)


__all__ = ["Close", "Prepare", "Service", "ServiceStore", "servicer_server", "upstream_embedder"]
