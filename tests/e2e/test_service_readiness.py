"""Search and ingest run as their own processes (as compose and k8s run them) follow the embedder's health.

``python -m services.search`` and ``python -m services.ingest`` beside a separate
``python -m services.embedder``: kill the embedder and both report NOT_SERVING; start a new
embedder on the same port and both report SERVING again, without a restart.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.processes import health_status, kill_tree, start_embedder, start_logged, wait_health
from tests.support.procs import free_port

pytestmark = pytest.mark.slow


def _env(tmp_path: Path, store: str, embedder_port: int) -> dict[str, str]:
    (tmp_path / "empty.toml").write_text("")  # built-in defaults, whatever config/vitrine.toml says
    return {
        "VITRINE_CONFIG": str(tmp_path / "empty.toml"),
        "VITRINE_STORE_BACKEND": "edge",
        "VITRINE_STORE_PATH": str(tmp_path / store),
        "VITRINE_SEARCH_EMBEDDER_ADDR": f"127.0.0.1:{embedder_port}",
        "VITRINE_INGEST_EMBEDDER_ADDR": f"127.0.0.1:{embedder_port}",
    }


def _all_become(want: str, addresses: list[str], timeout_s: float) -> dict[str, str]:
    """Poll until every address reports ``want``; returns the last status seen per address."""
    deadline = time.monotonic() + timeout_s
    seen = {a: health_status(a) for a in addresses}
    while any(s != want for s in seen.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = {a: health_status(a) for a in addresses}
    return seen


def test_search_and_ingest_processes_follow_a_separate_embedder(random_bundle, tmp_path):
    embedder_port, search_port, ingest_port = free_port(), free_port(), free_port()
    search_addr, ingest_addr = f"127.0.0.1:{search_port}", f"127.0.0.1:{ingest_port}"
    procs: list[subprocess.Popen] = []
    try:
        embedder = start_embedder(random_bundle, embedder_port, tmp_path / "embedder.log")
        procs.append(embedder)
        search = start_logged(
            "services.search",
            ["--port", str(search_port)],
            _env(tmp_path, "search-store", embedder_port),
            tmp_path / "search.log",
        )
        ingest = start_logged(
            "services.ingest",
            ["serve", "--port", str(ingest_port), "--bundle", str(random_bundle)],
            _env(tmp_path, "ingest-store", embedder_port),
            tmp_path / "ingest.log",
        )
        procs += [search, ingest]
        wait_health(search_addr, search, tmp_path / "search.log", timeout=120)
        wait_health(ingest_addr, ingest, tmp_path / "ingest.log", timeout=120)

        kill_tree(embedder)
        down = _all_become("NOT_SERVING", [search_addr, ingest_addr], timeout_s=15)
        assert down == {search_addr: "NOT_SERVING", ingest_addr: "NOT_SERVING"}
        assert search.poll() is None and ingest.poll() is None  # still running, only not ready

        replacement = start_embedder(random_bundle, embedder_port, tmp_path / "embedder-2.log")
        procs.append(replacement)
        wait_health(f"127.0.0.1:{embedder_port}", replacement, tmp_path / "embedder-2.log", timeout=120)
        back = _all_become("SERVING", [search_addr, ingest_addr], timeout_s=20)
        assert back == {search_addr: "SERVING", ingest_addr: "SERVING"}
    finally:
        for proc in procs:
            if proc.poll() is None:
                kill_tree(proc)
