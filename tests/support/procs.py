"""Start service processes the way clients and ops do, and wait for them to be ready."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_module(module: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m module args`` from the repo root; its output goes to a temporary log file.

    A file, not a pipe: nobody reads a pipe while the service runs, and a service that logs every
    request would block on a full pipe buffer after a few hundred calls. ``process_output`` reads it.
    """
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "VITRINE_LOG_JSON": "true", **(env or {})}
    log = tempfile.NamedTemporaryFile(prefix=f"vitrine-{module}-", suffix=".log", delete=False)  # noqa: SIM115
    with log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    proc.log_path = Path(log.name)  # type: ignore[attr-defined]
    return proc


def process_output(proc: subprocess.Popen) -> str:
    """Everything a process started by ``start_module`` has printed so far."""
    return proc.log_path.read_text(errors="replace")  # type: ignore[attr-defined]


def wait_serving(address: str, proc: subprocess.Popen, timeout: float = 60.0, service: str = "") -> None:
    """Poll grpc health until SERVING; raise with the process output if it dies or times out."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode}:\n{process_output(proc)}")
            try:
                resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    proc.kill()
    raise TimeoutError(f"{address} not SERVING after {timeout}s:\n{process_output(proc)}")


def stack_env(ports: Mapping[str, int], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment that puts each service of ``apps.stack`` on its port (web too when ``ports`` has it)."""
    embedder = f"127.0.0.1:{ports['embedder']}"
    env = {
        "VITRINE_EMBEDDER_SERVER_PORT": str(ports["embedder"]),
        "VITRINE_INGEST_SERVER_PORT": str(ports["ingest"]),
        "VITRINE_SEARCH_SERVER_PORT": str(ports["search"]),
        "VITRINE_INGEST_EMBEDDER_ADDR": embedder,
        "VITRINE_SEARCH_EMBEDDER_ADDR": embedder,
        "VITRINE_EMBEDDER_THREADS": "1",
    }
    if "web" in ports:
        env |= {"VITRINE_WEB_PORT": str(ports["web"]), "VITRINE_WEB_EMBEDDER_ADDR": embedder}
    return {**env, **(extra or {})}


def _kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def stop_process(
    proc: subprocess.Popen, timeout: float = 60, kill: Callable[[subprocess.Popen], object] = _kill
) -> int | None:
    """SIGTERM and wait; when ``timeout`` passes, ``kill`` it (default SIGKILL); returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill(proc)
    return proc.returncode
