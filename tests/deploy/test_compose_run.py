"""The compose embedder's own command, env and health checks, run as a local process (no docker).

Only the bundle path and the ports change (to a test bundle and free ports); everything else is
taken from docker-compose.yml and Dockerfile.cpu, so a broken command, setting or probe fails here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.deploy_files import (
    DOCKER,
    GRPC_PORTS,
    METRICS_PORTS,
    REPO,
    compose,
    exec_form,
    interpolate,
    parse_dockerfile,
)
from tests.support.procs import free_port

STARTUP_S = 90.0


def localize(argv: list[str], bundle: Path, ports: dict[int, int]) -> list[str]:
    """Point a container command line at the test bundle, free ports and this interpreter."""
    out = []
    for word in argv:
        word = str(word).replace("/bundle", str(bundle))
        for old, new in ports.items():
            word = word.replace(str(old), str(new))
        out.append(sys.executable if word == "python" else word)
    return out


def run_probe(argv: list[str], env: dict[str, str] | None = None) -> int:
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, timeout=30).returncode


@pytest.fixture
def compose_embedder(random_bundle):
    """The compose `embedder` service started locally; yields (service, port map, bundle)."""
    service = compose()["services"]["embedder"]
    ports = {GRPC_PORTS["embedder"]: free_port(), METRICS_PORTS["embedder"]: free_port()}
    env = {
        k: localize([interpolate(str(v))], random_bundle, ports)[0] for k, v in service["environment"].items()
    }
    assert env["VITRINE_EMBEDDER_SERVER_HOST"] == "0.0.0.0"
    command = localize(service["command"], random_bundle, ports)
    health = localize(service["healthcheck"]["test"][1:], random_bundle, ports)
    assert run_probe(health) == 1, "the health probe passes with no server running"
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **env, "VITRINE_EMBEDDER_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc, ports, health
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_compose_embedder_passes_its_healthcheck_and_serves_metrics(compose_embedder):
    proc, ports, health = compose_embedder
    deadline = time.monotonic() + STARTUP_S
    while run_probe(health) != 0:
        assert proc.poll() is None, f"embedder exited {proc.returncode}:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, "compose healthcheck never passed"
        time.sleep(0.5)
    url = f"http://127.0.0.1:{ports[METRICS_PORTS['embedder']]}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200 and b"# TYPE" in response.read()
    dockerfile_check = next(i for i in parse_dockerfile(DOCKER / "Dockerfile.cpu") if i.name == "HEALTHCHECK")
    argv = exec_form(dockerfile_check.args.split("CMD", 1)[1])
    addr = f"127.0.0.1:{ports[GRPC_PORTS['embedder']]}"
    env = {
        **os.environ,
        "HEALTHCHECK_ADDR": addr,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    assert run_probe(argv, env) == 0, "the image HEALTHCHECK fails against a serving embedder"
