"""One server bootstrap for all services: grpc.aio + health + reflection + graceful shutdown.

Usage::

    runner = GrpcServer(cfg.embedder_server, [ServiceBinding(NAME, add_fn, servicer)])
    port = await runner.start()          # health: NOT_SERVING until set_serving(True)
    ...load models / connect store...
    await runner.set_serving(True)
    await runner.wait_for_termination()  # SIGTERM/SIGINT: NOT_SERVING, drain, exit
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from services.common.config import ServerConfig
from services.common.interceptors import ObservabilityInterceptor

log = logging.getLogger("vitrine.server")

OVERALL = ""


@dataclass(frozen=True)
class ServiceBinding:
    """A servicer and how to add it to a server, under its full proto service name."""

    full_name: str
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any


def server_credentials(cfg: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials from cert/key files (client CA set -> mutual TLS), or None for plaintext."""
    if not cfg.tls_cert and not cfg.tls_key:
        return None
    if not (cfg.tls_cert and cfg.tls_key):
        raise ValueError("TLS needs both tls_cert and tls_key")
    key = Path(cfg.tls_key).read_bytes()
    cert = Path(cfg.tls_cert).read_bytes()
    ca = Path(cfg.tls_client_ca).read_bytes() if cfg.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def grpc_options(cfg: ServerConfig) -> list[tuple[str, Any]]:
    """Channel options shared by servers (message size limits from config)."""
    size = cfg.max_message_mb * 1024 * 1024
    return [("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size)]


class GrpcServer:
    """A grpc.aio server with the standard health and reflection services."""

    def __init__(
        self,
        cfg: ServerConfig,
        services: Sequence[ServiceBinding],
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        self.cfg = cfg
        self.services = list(services)
        self.health = health.aio.HealthServicer()
        self.server = grpc.aio.server(
            interceptors=[ObservabilityInterceptor(cfg.auth_token), *interceptors],
            options=grpc_options(cfg),
            maximum_concurrent_rpcs=cfg.max_concurrent_rpcs or None,
        )
        for binding in self.services:
            binding.add_to_server(binding.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [b.full_name for b in self.services]
        reflection.enable_server_reflection(
            [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            self.server,
        )
        self.port = 0
        self._stopping = asyncio.Event()
        self._signalled = False
        self._metrics_started = False

    async def start(self) -> int:
        """Bind and start; every service reports NOT_SERVING until ``set_serving(True)``."""
        await self.set_serving(False)
        address = f"{self.cfg.host}:{self.cfg.port}"
        creds = server_credentials(self.cfg)
        if creds is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, creds)
        if self.port == 0:
            raise OSError(f"could not bind {address}")
        await self.server.start()
        if self.cfg.metrics_port and not self._metrics_started:
            start_http_server(self.cfg.metrics_port, addr=self.cfg.host)
            self._metrics_started = True
        log.info("listening", extra={"port": self.port, "services": [b.full_name for b in self.services]})
        return self.port

    async def set_serving(self, serving: bool) -> None:
        """Report SERVING or NOT_SERVING for the overall server and each named service.

        Once a stop signal has arrived the server stays NOT_SERVING (a dependency watch coming back
        during the drain does not advertise it again).
        """
        serving = serving and not self._signalled
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in [OVERALL, *(b.full_name for b in self.services)]:
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Drain: report NOT_SERVING, stop accepting, let in-flight RPCs finish within ``grace``."""
        await self.set_serving(False)
        grace = self.cfg.grace_s if grace is None else grace
        log.info("draining", extra={"grace_s": grace})
        await self.server.stop(grace)
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT start a graceful stop (once): NOT_SERVING, ``drain_delay_s``, then drain."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda s=sig: asyncio.ensure_future(self._on_signal(s)))

    async def _on_signal(self, sig: signal.Signals) -> None:
        if self._signalled:
            return
        self._signalled = True
        log.info("signal received", extra={"signal": sig.name, "drain_delay_s": self.cfg.drain_delay_s})
        await self.set_serving(False)
        if self.cfg.drain_delay_s > 0:
            await asyncio.sleep(self.cfg.drain_delay_s)  # still answering while probes see NOT_SERVING
        await self.stop()

    async def wait_for_termination(self) -> None:
        """Block until the server has stopped."""
        await self.server.wait_for_termination()
