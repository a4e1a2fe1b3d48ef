"""Service processes for crash and restart scenarios: logs to files (never a full pipe), kill by pid.

``python -m apps.stack`` runs the embedder as a child in its own session, so a SIGKILL of the
stack leaves the embedder running; :func:`kill_tree` finds the children first and kills them too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.procs import ROOT, free_port, stack_env, stop_process


def log_tail(path: Path, chars: int = 4000) -> str:
    """The end of a log file (for failure messages)."""
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


# reliability scenarios observe each search reaching the embedder, so the query cache is off
NO_QUERY_CACHE = {"VITRINE_SEARCH_QUERY_CACHE_SIZE": "0"}


def start_logged(module: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """``python -m module args`` from the repo root with stdout and stderr appended to ``log``."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "VITRINE_LOG_JSON": "true", **env}
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def health_status(address: str, timeout: float = 1.0) -> str:
    """SERVING / NOT_SERVING / ..., or the gRPC error code name when the check itself fails."""
    with grpc.insecure_channel(address) as channel:
        try:
            resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)


def wait_health(
    address: str, proc: subprocess.Popen, log: Path, want: str = "SERVING", timeout: float = 180
) -> None:
    """Poll health until ``want``; raise with the log tail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{log_tail(log)}")
        if health_status(address) == want:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{address} not {want} after {timeout}s:\n{log_tail(log)}")


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        children += [int(c) for c in text.split()]
    return children


def kill_tree(proc: subprocess.Popen) -> list[int]:
    """SIGKILL a process and its direct children (by pid); returns the children killed."""
    children = child_pids(proc.pid) if proc.poll() is None else []
    proc.kill()
    proc.wait(timeout=30)
    for child in children:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            continue
    return children


@dataclass
class StackProcess:
    """A ``python -m apps.stack`` process on free ports."""

    proc: subprocess.Popen
    ports: dict[str, int]
    log: Path

    def addr(self, service: str) -> str:
        """``127.0.0.1:<port>`` of embedder, ingest or search."""
        return f"127.0.0.1:{self.ports[service]}"

    def embedder_pid(self) -> int:
        """The embedder child of the stack."""
        children = child_pids(self.proc.pid)
        if len(children) != 1:
            raise RuntimeError(f"expected one embedder child of the stack, found {children}")
        return children[0]

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, wait (SIGKILL the tree after ``timeout``); returns the exit code."""
        return stop_process(self.proc, timeout, kill=kill_tree)


def start_stack(
    bundle: Path, store: Path, log: Path, extra_env: dict[str, str] | None = None
) -> StackProcess:
    """Start the stack (no web) and wait until search is SERVING."""
    ports = {name: free_port() for name in ("embedder", "ingest", "search")}
    args = ["--bundle", str(bundle), "--store", str(store), "--no-web"]
    proc = start_logged(
        "apps.stack",
        args,
        stack_env(ports, {"VITRINE_EMBEDDER_DEVICE": "cpu", **NO_QUERY_CACHE, **(extra_env or {})}),
        log,
    )
    stack = StackProcess(proc, ports, log)
    try:
        wait_health(stack.addr("search"), proc, log)
    except BaseException:
        kill_tree(proc)
        raise
    return stack


def start_embedder(
    bundle: Path, port: int, log: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen:
    """``python -m services.embedder`` on ``port`` (CPU, one torch thread)."""
    env = {"VITRINE_EMBEDDER_THREADS": "1", "VITRINE_EMBEDDER_DEVICE": "cpu", **(extra_env or {})}
    return start_logged("services.embedder", ["--bundle", str(bundle), "--port", str(port)], env, log)


__all__ = [
    "StackProcess",
    "child_pids",
    "health_status",
    "kill_tree",
    "log_tail",
    "start_embedder",
    "start_logged",
    "start_stack",
    "wait_health",
]
