"""The three services in this process, over real loopback gRPC and one Edge store in a temp folder.

Embedder, ingest and search each get their own :class:`GrpcServer` (health, interceptors, limits,
optional TLS and bearer token) exactly as their ``__main__`` modules build them; ingest and search
call the embedder through the production :class:`EmbedderClient` (retry service config included).
Tests can add server interceptors to the embedder, e.g. to inject faults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from domain.bundle import load_bundle
from services.common.config import IngestConfig, SearchConfig, ServerConfig, StoreConfig
from services.common.embed_client import EmbedderClient
from services.common.readiness import DependencyWatch, upstream_serving
from services.common.server import GrpcServer, ServiceBinding
from services.embedder.core import EmbedderCore
from services.embedder.encoder import EnsembleEncoder
from services.embedder.server import SERVICE_NAME as EMBEDDER_SERVICE
from services.embedder.server import EmbedderServicer
from services.ingest.core import IngestCore
from services.ingest.server import SERVICE_NAME as INGEST_SERVICE
from services.ingest.server import IngestServicer
from services.search.core import SearchCore
from services.search.server import SERVICE_NAME as SEARCH_SERVICE
from services.search.server import SearchServicer
from services.storage.factory import open_store
from services.storage.port import VectorStore
from tests.support.embedder import EMBEDDER_TEST_CFG
from vitrine.v1 import embedder_pb2_grpc, ingest_pb2_grpc, search_pb2_grpc

CATALOG = "catalog"
# Ingest batches must fit one embedder request (max_items); the queue holds a few batches.
EMBEDDER_CFG = dataclasses.replace(EMBEDDER_TEST_CFG, max_items=64, max_queue=1024)
INGEST_BATCH = 32


@dataclass(frozen=True)
class Security:
    """TLS files and bearer token shared by every server and internal client (all optional)."""

    cert: str = ""
    key: str = ""
    ca: str = ""
    token: str = ""

    def server(self, **overrides: object) -> ServerConfig:
        """A server config on a free loopback port with these credentials."""
        base = ServerConfig(port=0, grace_s=2.0, tls_cert=self.cert, tls_key=self.key, auth_token=self.token)
        return dataclasses.replace(base, **overrides)

    def channel(self, address: str) -> grpc.aio.Channel:
        """A plain client channel (no token: callers add metadata themselves)."""
        if not self.ca:
            return grpc.aio.insecure_channel(address)
        creds = grpc.ssl_channel_credentials(root_certificates=Path(self.ca).read_bytes())
        return grpc.aio.secure_channel(address, creds)


@dataclass
class InProcessStack:
    """Running servers, the shared store and the ingest core (for direct checks)."""

    embedder: GrpcServer
    ingest: GrpcServer
    search: GrpcServer
    store: VectorStore
    ingest_core: IngestCore
    embedder_core: EmbedderCore

    def addr(self, service: str) -> str:
        """``127.0.0.1:<port>`` of ``embedder``, ``ingest`` or ``search``."""
        server: GrpcServer = getattr(self, service)
        return f"127.0.0.1:{server.port}"


def _binding(name: str, add, servicer) -> list[ServiceBinding]:
    return [ServiceBinding(name, add, servicer)]


async def _start(server: GrpcServer) -> GrpcServer:
    await server.start()
    await server.set_serving(True)
    return server


@asynccontextmanager
async def inprocess_stack(
    encoder: EnsembleEncoder,
    bundle_dir: Path,
    store_dir: Path,
    image_root: Path,
    *,
    embedder_interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    security: Security = Security(),
    max_message_mb: int = 32,
    search_timeout_s: float = 10.0,
) -> AsyncIterator[InProcessStack]:
    """Start embedder, ingest and search on free ports (TLS/token from ``security``); stop them on exit."""
    embedder_core = EmbedderCore(encoder, EMBEDDER_CFG)
    embedder = await _start(
        GrpcServer(
            security.server(max_message_mb=max_message_mb),
            _binding(
                EMBEDDER_SERVICE,
                embedder_pb2_grpc.add_EmbedderServicer_to_server,
                EmbedderServicer(embedder_core),
            ),
            interceptors=embedder_interceptors,
        )
    )
    address = f"127.0.0.1:{embedder.port}"
    store = open_store(StoreConfig(backend="edge", path=str(store_dir)))
    bundle = load_bundle(bundle_dir)
    connect = dict(tls_ca=security.ca, auth_token=security.token)
    ingest_client = EmbedderClient.connect(address, 30.0, **connect)
    search_client = EmbedderClient.connect(address, search_timeout_s, wait_for_ready=False, **connect)
    ingest_cfg = IngestConfig(
        embedder_addr=address, allowed_image_root=str(image_root), batch_size=INGEST_BATCH
    )
    ingest_core = IngestCore(store, bundle, ingest_client, ingest_cfg, CATALOG)
    ingest_core.open()
    search_core = SearchCore(
        # the query cache off: these scenarios count the embedder calls each search makes
        SearchConfig(embedder_addr=address, rpc_timeout_s=search_timeout_s, query_cache_size=0),
        store,
        bundle,
        search_client,
        CATALOG,
    )
    servers = [embedder]
    watch: DependencyWatch | None = None
    watch_channel = security.channel(address)
    try:
        ingest = await _start(
            GrpcServer(
                security.server(max_message_mb=max_message_mb),
                _binding(
                    INGEST_SERVICE, ingest_pb2_grpc.add_IngestServicer_to_server, IngestServicer(ingest_core)
                ),
            )
        )
        servers.append(ingest)
        search = await _start(
            GrpcServer(
                security.server(max_message_mb=max_message_mb),
                _binding(
                    SEARCH_SERVICE, search_pb2_grpc.add_SearchServicer_to_server, SearchServicer(search_core)
                ),
            )
        )
        servers.append(search)

        async def set_serving(serving: bool) -> None:
            await ingest.set_serving(serving)
            await search.set_serving(serving)

        watch = DependencyWatch([lambda: upstream_serving(watch_channel)], set_serving, interval_s=0.2)
        await watch.check_once()
        watch.start()
        yield InProcessStack(embedder, ingest, search, store, ingest_core, embedder_core)
    finally:
        if watch is not None:
            await watch.stop()
        for server in reversed(servers):
            await server.stop(0)
        for channel_owner in (ingest_client, search_client):
            await channel_owner.close()
        await watch_channel.close()
        await embedder_core.close()
        store.close()


__all__ = ["CATALOG", "EMBEDDER_CFG", "INGEST_BATCH", "InProcessStack", "Security", "inprocess_stack"]
