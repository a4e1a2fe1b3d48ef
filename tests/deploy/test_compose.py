"""docker-compose.yml: builds, health checks, ports, dependencies and VITRINE_* settings agree."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from services.common.config import load_config
from tests.deploy.deploy_files import (
    COMPOSE_FILE,
    GRPC_PORTS,
    METRICS_PORTS,
    QDRANT_HTTP_PORT,
    REPO,
    compose,
    flag_value,
    interpolate,
    module_path,
    python_module,
    service_kind,
    unknown_env_names,
)

SERVICES: dict[str, Any] = compose()["services"]
VITRINE_SERVICES = {
    name: svc for name, svc in SERVICES.items() if service_kind(python_module(svc.get("command")))
}
HEALTH_MODULE = "services.common.healthcheck"


def kind_of(svc: dict[str, Any]) -> str:
    kind = service_kind(python_module(svc.get("command")))
    assert kind, f"not a vitrine service: {svc.get('command')}"
    return kind


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """The service's environment with compose defaults substituted."""
    env = svc.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): interpolate(str(v)) for k, v in env.items()}


def container_port(spec: str | dict[str, Any]) -> int:
    if isinstance(spec, dict):
        return int(spec["target"])
    return int(str(spec).split(":")[-1].split("/")[0])


def host_port(spec: str | dict[str, Any]) -> str:
    if isinstance(spec, dict):
        return f"{spec.get('host_ip', '')}:{spec['published']}"
    return ":".join(str(spec).split(":")[:-1])


def test_every_service_has_an_image_or_an_existing_build():
    assert {"qdrant", "embedder", "ingest", "search", "embedder-gpu"} <= set(SERVICES)
    for name, svc in SERVICES.items():
        assert "image" in svc or "build" in svc, f"{name}: neither image nor build"
        if "build" in svc:
            context = REPO / svc["build"]["context"]
            assert context.is_dir(), f"{name}: build context {context} missing"
            assert (context / svc["build"]["dockerfile"]).is_file(), f"{name}: Dockerfile missing"


def test_vitrine_services_build_from_the_dockerfiles():
    expected = {"embedder": "Dockerfile.cpu", "ingest": "Dockerfile.cpu", "search": "Dockerfile.cpu"}
    expected["embedder-gpu"] = "Dockerfile.cuda"
    for name, dockerfile in expected.items():
        assert SERVICES[name]["build"]["dockerfile"] == f"deploy/docker/{dockerfile}", name


def test_commands_run_existing_service_packages():
    assert set(VITRINE_SERVICES) == {"embedder", "ingest", "search", "embedder-gpu"}
    for name, svc in VITRINE_SERVICES.items():
        module = python_module(svc["command"])
        assert module_path(module).is_dir(), f"{name}: {module} is not a package directory"
        assert flag_value(svc["command"], "--port") == str(GRPC_PORTS[kind_of(svc)]), f"{name}: --port"


def test_every_service_has_a_healthcheck():
    for name, svc in SERVICES.items():
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, f"{name}: no healthcheck test"


def test_vitrine_healthchecks_probe_grpc_health_on_the_service_port():
    assert module_path(HEALTH_MODULE).is_file()
    for name, svc in VITRINE_SERVICES.items():
        argv = svc["healthcheck"]["test"][1:]
        assert python_module(argv) == HEALTH_MODULE, f"{name}: healthcheck is not the grpc health probe"
        assert flag_value(argv, "--addr") == f"127.0.0.1:{GRPC_PORTS[kind_of(svc)]}", name


def test_qdrant_healthcheck_asks_readyz_on_its_http_port():
    script = " ".join(SERVICES["qdrant"]["healthcheck"]["test"])
    assert f"/dev/tcp/127.0.0.1/{QDRANT_HTTP_PORT}" in script and "/readyz" in script


def test_published_ports_are_ports_the_service_listens_on():
    for name, svc in VITRINE_SERVICES.items():
        kind = kind_of(svc)
        targets = {container_port(p) for p in svc.get("ports", [])}
        assert targets == {GRPC_PORTS[kind], METRICS_PORTS[kind]}, f"{name}: ports {targets}"
        metrics = environment(svc).get(f"VITRINE_{kind.upper()}_SERVER_METRICS_PORT")
        assert metrics == str(METRICS_PORTS[kind]), f"{name}: metrics port env {metrics}"
    assert {container_port(p) for p in SERVICES["qdrant"].get("ports", [])} <= {6333, 6334}


def test_host_ports_do_not_collide():
    published = [host_port(p) for svc in SERVICES.values() for p in svc.get("ports", [])]
    assert len(published) == len(set(published)), f"duplicate host ports: {published}"


def test_depends_on_names_healthy_existing_services():
    for name, svc in SERVICES.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must use the long form with conditions"
        for target, rule in deps.items():
            assert target in SERVICES, f"{name} depends on unknown service {target}"
            assert rule.get("condition") == "service_healthy", f"{name} -> {target}: {rule}"
            assert "healthcheck" in SERVICES[target], f"{name} waits for {target}, which has no healthcheck"
            assert not SERVICES[target].get("profiles"), f"{name} depends on profile-only {target}"
    for name in ("ingest", "search"):
        assert {"embedder", "qdrant"} <= set(SERVICES[name]["depends_on"]), name


def test_environment_keys_are_config_variables():
    for name, svc in SERVICES.items():
        unknown = unknown_env_names(" ".join(environment(svc)))
        assert unknown == [], f"{name}: unknown settings {unknown}"
    assert unknown_env_names(COMPOSE_FILE.read_text()) == []


def test_environment_values_load_as_config():
    for name, svc in VITRINE_SERVICES.items():
        env = {k: v for k, v in environment(svc).items() if k.startswith("VITRINE_")}
        cfg = load_config(env=env)
        server = getattr(cfg, f"{kind_of(svc)}_server")
        assert server.host == "0.0.0.0", f"{name}: binds {server.host}, unreachable from other containers"
        assert cfg.embedder.bundle == "/bundle", name


def test_embedder_addresses_point_at_an_embedder_service():
    for name in ("ingest", "search"):
        addr = environment(SERVICES[name])[f"VITRINE_{name.upper()}_EMBEDDER_ADDR"]
        host, _, port = addr.rpartition(":")
        assert host in SERVICES and kind_of(SERVICES[host]) == "embedder", f"{name}: {addr}"
        assert int(port) == GRPC_PORTS["embedder"], f"{name}: {addr}"


def test_store_url_points_at_the_qdrant_service():
    for name in ("ingest", "search"):
        env = environment(SERVICES[name])
        assert env["VITRINE_STORE_BACKEND"] == "qdrant", name
        url = urlsplit(env["VITRINE_STORE_URL"])
        assert url.hostname in SERVICES and url.port == QDRANT_HTTP_PORT, f"{name}: {url.geturl()}"
        assert str(SERVICES[url.hostname]["image"]).startswith("qdrant/qdrant:"), name


def test_qdrant_image_is_pinned_and_its_volume_declared():
    image = SERVICES["qdrant"]["image"]
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", image), f"unpinned qdrant image {image}"
    named = [str(v).split(":")[0] for v in SERVICES["qdrant"]["volumes"]]
    assert any(v in (compose().get("volumes") or {}) for v in named), f"no named volume in {named}"


@pytest.mark.parametrize("name", ["embedder", "ingest", "search", "embedder-gpu"])
def test_bundle_is_mounted_read_only(name):
    mounts = [interpolate(str(v)) for v in SERVICES[name]["volumes"]]
    assert "./data/bundles/default:/bundle:ro" in mounts, f"{name}: {mounts}"


def test_gpu_profile_reserves_an_nvidia_gpu():
    gpu = SERVICES["embedder-gpu"]
    assert gpu.get("profiles") == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    env = environment(gpu)
    assert (env["VITRINE_EMBEDDER_DEVICE"], env["VITRINE_EMBEDDER_PRECISION"]) == ("cuda", "fp16")
    assert all(not svc.get("profiles") for n, svc in SERVICES.items() if n != "embedder-gpu")
