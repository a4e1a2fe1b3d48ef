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
import time
from pathlib import Path

from services.common.channels import open_channel
from services.common.config import VitrineConfig, load_config
from services.common.logsetup import setup_logging
from services.common.readiness import upstream_serving
from services.common.service import Service
from services.ingest import service as ingest_service
from services.search import service as search_service
from services.storage.blobs import blob_dir_for
from services.storage.factory import open_store

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


def pid_file_for(cfg: VitrineConfig) -> Path:
    """Where the stack records its processes: ``run/stack.pid`` beside the store folder."""
    return Path(cfg.store.path).resolve().parent / "run" / "stack.pid"


def write_pid_file(path: Path, procs: dict[str, int]) -> None:
    """Record ``pid module`` per line (the stack first) so ``make down`` stops exactly these."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{pid} {module}\n" for module, pid in procs.items()))


def _recorded(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text().splitlines():
        pid, _, module = line.partition(" ")
        if pid.isdigit() and module:
            entries.append((int(pid), module))
    return entries


def _runs(pid: int, module: str) -> bool:
    """True while ``pid`` is alive and still ``python -m module`` (not a recycled pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return module.encode() in argv


def stop_recorded(path: Path, timeout_s: float = 60.0) -> list[int]:
    """SIGTERM what a pid file records, wait for it to exit, remove the file; returns the pids signalled.

    A running stack stops its own children; when it is gone (killed), its children that still run
    are signalled one by one. A pid that no longer runs the recorded module is left alone.
    """
    entries = [(pid, module) for pid, module in _recorded(path) if _runs(pid, module)]
    if entries and entries[0][1] == "apps.stack":
        entries = entries[:1]
    signalled = []
    for pid, _ in entries:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            signalled.append(pid)
    deadline = time.monotonic() + timeout_s
    while any(_runs(pid, m) for pid, m in _recorded(path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    path.unlink(missing_ok=True)
    return signalled


def _release_pid_file(path: Path) -> None:
    """Remove the pid file when it is still ours (another stack may have taken the store since)."""
    entries = _recorded(path)
    if entries and entries[0][0] == os.getpid():
        path.unlink(missing_ok=True)


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
    if not cfg.search.bundle:  # search checks the embedder against the same bundle file
        cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, bundle=cfg.embedder.bundle))
    pid_file = pid_file_for(cfg)
    processes = {"apps.stack": os.getpid()}
    embedder_addr = f"{cfg.embedder_server.host}:{cfg.embedder_server.port}"
    embedder = _spawn(
        "services.embedder", ["--bundle", cfg.embedder.bundle, "--port", str(cfg.embedder_server.port)]
    )
    processes["services.embedder"] = embedder.pid
    write_pid_file(pid_file, processes)
    gateway = None
    services: list[Service] = []
    store = None
    try:
        await _wait_upstream(embedder_addr, embedder, "embedder")
        store = await asyncio.to_thread(open_store, cfg.store)
        services = [ingest_service.build(cfg, store), search_service.build(cfg, store)]
        ports = [await service.start() for service in services]
        if web:
            gateway = _spawn("services.web", gateway_args(cfg))
            processes["services.web"] = gateway.pid
            write_pid_file(pid_file, processes)
        log.info(
            "stack ready",
            extra={
                "embedder": embedder_addr,
                "ingest": ports[0],
                "search": ports[1],
                "pid_file": str(pid_file),
                "web": browse_hint(cfg) if web else None,
            },
        )
        await stop.wait()
    finally:
        await asyncio.gather(*(service.stop() for service in services))
        if store is not None:
            await asyncio.to_thread(store.flush)
            await asyncio.to_thread(store.close)
        await asyncio.to_thread(_stop, gateway, cfg.embedder_server.grace_s)
        await asyncio.to_thread(_stop, embedder, cfg.embedder_server.grace_s)
        _release_pid_file(pid_file)
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
    parser.add_argument(
        "--down", action="store_true", help="stop the stack the pid file beside the store records"
    )
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
    if args.down:
        stopped = stop_recorded(pid_file_for(cfg))
        print(f"stopped {len(stopped)} process(es)" if stopped else "no stack running")
        return
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_stack(cfg, web=not args.no_web))


if __name__ == "__main__":
    main()
