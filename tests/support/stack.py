"""Run ``python -m apps.stack`` on free loopback ports and load a catalog into it (tests, UI checks)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import ROOT, free_port, stack_env, start_module, stop_process, wait_serving


@dataclass(frozen=True)
class RunningStack:
    """Addresses of a running stack and its process."""

    ports: dict[str, int]
    env: dict[str, str]
    proc: subprocess.Popen

    def addr(self, service: str) -> str:
        """``127.0.0.1:<port>`` of embedder, ingest or search."""
        return f"127.0.0.1:{self.ports[service]}"

    @property
    def web_url(self) -> str:
        """Base URL of the web gateway."""
        return f"http://127.0.0.1:{self.ports['web']}"

    def load(self, catalog: Path) -> subprocess.CompletedProcess:
        """``python -m services.ingest load CATALOG`` against this stack's ingest."""
        return subprocess.run(
            [sys.executable, "-m", "services.ingest", "load", str(catalog), "--addr", self.addr("ingest")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait; returns the exit code."""
        return stop_process(self.proc, timeout)


@contextmanager
def running_stack(
    bundle: Path,
    store: Path,
    web: bool = False,
    image_root: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[RunningStack]:
    """Start the stack, wait until search is SERVING, stop it on exit."""
    ports = {name: free_port() for name in ("embedder", "ingest", "search", "web")}
    env = stack_env(ports)
    if image_root is not None:
        env["VITRINE_WEB_IMAGE_ROOT"] = str(image_root)
    env.update(extra_env or {})
    args = ["--bundle", str(bundle), "--store", str(store)] + ([] if web else ["--no-web"])
    proc = start_module("apps.stack", args, env)
    stack = RunningStack(ports, env, proc)
    try:
        wait_serving(stack.addr("search"), proc, timeout=180)
        yield stack
    finally:
        stack.stop()
