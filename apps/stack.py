"""The whole stack on loopback, embedded mode: ``python -m apps.stack`` (``make up``).

An Edge shard belongs to one process, so in embedded mode ingest and search run in this process
over one store, while the embedder (and the web gateway) run as their own processes:

    embedder   python -m services.embedder   127.0.0.1:50051
    ingest     this process                  127.0.0.1:50052   } one Qdrant Edge store
    search     this process                  127.0.0.1:50053   } under VITRINE_STORE_PATH
    web        python -m services.web        127.0.0.1:8080    (--no-web to skip)

In server mode (``VITRINE_STORE_BACKEND=qdrant``) every service is its own process/pod instead;
see deploy/. Ctrl-C or SIGTERM drains and stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys

from domain.bundle import load_bundle
from services.common.channels import open_channel
from services.common.config import VitrineConfig, load_config
from services.common.embed_client import EmbedderClient
from services.common.logsetup import setup_logging
from services.common.readiness import DependencyWatch, upstream_serving
from services.common.server import GrpcServer, ServiceBinding
from services.ingest import server as ingest_server
from services.ingest.__main__ import build_core
from services.ingest.embed_client import EmbedderClient as IngestEmbedderClient
from services.search import server as search_server
from services.search.core import SearchCore
from services.storage.blobs import blob_dir_for
from services.storage.factory import open_store
from vitrine.v1 import ingest_pb2_grpc, search_pb2_grpc

log = logging.getLogger("vitrine.stack")


def _spawn(module: str, args: list[str]) -> subprocess.Popen:
    """Start ``python -m module`` in its own process group (signals are ours to send)."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], env=os.environ.copy(), start_new_session=True
    )


async def _wait_upstream(address: str, proc: subprocess.Popen, what: str, timeout_s: float = 300) -> None:
    channel = open_channel(address, retries=False)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not await upstream_serving(channel):
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
            if loop.time() > deadline:
                raise TimeoutError(f"{what} at {address} not ready after {timeout_s:.0f}s")
            await asyncio.sleep(0.3)
    finally:
        await channel.close()


def _stop(proc: subprocess.Popen | None, grace_s: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s + 5)
    except subprocess.TimeoutExpired:
        proc.kill()


def gateway_args(cfg: VitrineConfig) -> list[str]:
    """Arguments of the web gateway: this stack's search, and the blob folder its ingest writes."""
    blob_dir = blob_dir_for(cfg.blobs, cfg.store)
    return [
        "--port",
        str(cfg.web.port),
        "--search-addr",
        f"{cfg.search_server.host}:{cfg.search_server.port}",
        "--blobs-dir",
        str(blob_dir) if blob_dir is not None else "off",
    ]


def browse_hint(cfg: VitrineConfig) -> str:
    """Where the page is once ``make up`` runs (what the demo prints last)."""
    return f"http://{cfg.web.host}:{cfg.web.port}/"


async def run_stack(cfg: VitrineConfig, web: bool = True, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set or a signal arrives; everything is drained and closed on the way out."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    embedder_addr = f"{cfg.embedder_server.host}:{cfg.embedder_server.port}"
    embedder = _spawn(
        "services.embedder", ["--bundle", cfg.embedder.bundle, "--port", str(cfg.embedder_server.port)]
    )
    gateway = None
    servers: list[GrpcServer] = []
    store = None
    clients: list[EmbedderClient] = []
    watch_channel = open_channel(embedder_addr, retries=False)
    watch = None
    try:
        await _wait_upstream(embedder_addr, embedder, "embedder")
        bundle = load_bundle(cfg.embedder.bundle)
        store = await asyncio.to_thread(open_store, cfg.store)
        ingest_client = IngestEmbedderClient.from_config(cfg.ingest)
        search_client = EmbedderClient.connect(
            cfg.search.embedder_addr, cfg.search.rpc_timeout_s, wait_for_ready=False
        )
        clients += [ingest_client, search_client]
        ingest_core = build_core(cfg, store, bundle, ingest_client)
        collection = await asyncio.to_thread(ingest_core.open)
        read = await asyncio.to_thread(ingest_core.read_collection)
        if not ingest_core.owns(read):
            log.warning(
                "search reads a collection built by another bundle version; new writes go to this "
                "version's collection, and Ingest.Reindex fills it and swaps the alias",
                extra={"alias": cfg.store.catalog, "target": read, "expected": collection},
            )
        search_core = SearchCore(cfg.search, store, bundle, search_client, cfg.store.catalog)
        servers = [
            GrpcServer(
                cfg.ingest_server,
                [
                    ServiceBinding(
                        ingest_server.SERVICE_NAME,
                        ingest_pb2_grpc.add_IngestServicer_to_server,
                        ingest_server.IngestServicer(ingest_core),
                    )
                ],
            ),
            GrpcServer(
                cfg.search_server,
                [
                    ServiceBinding(
                        search_server.SERVICE_NAME,
                        search_pb2_grpc.add_SearchServicer_to_server,
                        search_server.SearchServicer(search_core),
                    )
                ],
            ),
        ]
        for server in servers:
            await server.start()

        async def set_serving(serving: bool) -> None:
            for server in servers:
                await server.set_serving(serving)

        watch = DependencyWatch([lambda: upstream_serving(watch_channel)], set_serving)
        await watch.check_once()
        watch.start()
        if web:
            gateway = _spawn("services.web", gateway_args(cfg))
        log.info(
            "stack ready",
            extra={
                "embedder": embedder_addr,
                "ingest": cfg.ingest_server.port,
                "search": cfg.search_server.port,
                "collection": collection,
                "web": browse_hint(cfg) if web else None,
            },
        )
        await stop.wait()
    finally:
        if watch is not None:
            await watch.stop()
        await asyncio.gather(*(server.stop() for server in servers))
        for client in clients:
            await client.close()
        await watch_channel.close()
        if store is not None:
            await asyncio.to_thread(store.flush)
            await asyncio.to_thread(store.close)
        await asyncio.to_thread(_stop, gateway, cfg.embedder_server.grace_s)
        await asyncio.to_thread(_stop, embedder, cfg.embedder_server.grace_s)
        log.info("stack stopped")


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m apps.stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config")
    parser.add_argument("--bundle", help="bundle directory (default VITRINE_EMBEDDER_BUNDLE)")
    parser.add_argument("--store", help="Edge store directory (default VITRINE_STORE_PATH)")
    parser.add_argument("--no-web", action="store_true", help="do not start the web gateway")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    if args.bundle:
        cfg = dataclasses.replace(cfg, embedder=dataclasses.replace(cfg.embedder, bundle=args.bundle))
        os.environ["VITRINE_EMBEDDER_BUNDLE"] = args.bundle
    if args.store:
        cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, path=args.store))
    if cfg.store.backend != "edge":
        log.warning(
            "store backend %s: the stack still runs ingest and search in one process", cfg.store.backend
        )
    setup_logging(cfg.log_level, cfg.log_json)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_stack(cfg, web=not args.no_web))


if __name__ == "__main__":
    main()
