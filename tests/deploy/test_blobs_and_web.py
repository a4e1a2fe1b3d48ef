"""Pushed image bytes on a shared volume (compose and k8s), and the web gateway deployed beside them.

Ingest writes the blob folder; search and the gateway mount the same volume read-only at the path
their configuration names (VITRINE_BLOBS_DIR), so every service sees one set of images.
"""

from __future__ import annotations

from typing import Any

import pytest

from services.common.config import load_config
from tests.deploy.deploy_files import (
    compose,
    containers,
    interpolate,
    k8s_object,
    pod_spec,
    python_module,
)

BLOB_READERS = ("search", "web")
BLOB_USERS = ("ingest", *BLOB_READERS)


def compose_env(svc: dict[str, Any]) -> dict[str, str]:
    return {str(k): interpolate(str(v)) for k, v in svc.get("environment", {}).items()}


def compose_mounts(svc: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """target -> (source, read-only) of a compose service's short-form volumes."""
    out = {}
    for spec in svc.get("volumes", []):
        parts = interpolate(str(spec)).split(":")
        out[parts[1]] = (parts[0], len(parts) > 2 and parts[2] == "ro")
    return out


@pytest.mark.parametrize("name", BLOB_USERS)
def test_compose_services_share_the_blobs_volume_at_the_configured_dir(name):
    svc = compose()["services"][name]
    cfg = load_config(env=compose_env(svc))
    assert cfg.blobs.backend == "files" and cfg.blobs.dir == "/blobs", name
    source, read_only = compose_mounts(svc)[cfg.blobs.dir]
    assert source in (compose().get("volumes") or {}), f"{name}: {source} is not a named volume"
    assert read_only is (name in BLOB_READERS), f"{name}: read-only {read_only}"


def test_compose_web_serves_search_on_its_port_with_a_health_check():
    web = compose()["services"]["web"]
    argv = [interpolate(str(a)) for a in web["command"]]
    assert python_module(argv) == "services.web"
    assert argv[argv.index("--search-addr") + 1] == "search:50053"
    assert "search" in web["depends_on"]
    assert "8080" in " ".join(web["healthcheck"]["test"]) and "/healthz" in " ".join(
        web["healthcheck"]["test"]
    )
    assert compose_env(web)["VITRINE_WEB_IMAGE_ROOT"] in compose_mounts(web)


def config_map() -> dict[str, str]:
    return k8s_object("ConfigMap", "vitrine-config").doc["data"]


@pytest.mark.parametrize("name", BLOB_USERS)
def test_k8s_pods_mount_the_blobs_claim_at_the_configured_dir(name):
    cfg = load_config(env=config_map())
    spec = pod_spec(k8s_object("Deployment", name))
    mount = next(m for m in containers(spec)[-1]["volumeMounts"] if m["mountPath"] == cfg.blobs.dir)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"]["claimName"] == "vitrine-blobs", name
    assert bool(mount.get("readOnly")) is (name in BLOB_READERS), name


def test_k8s_blobs_claim_is_shared_across_nodes():
    claim = k8s_object("PersistentVolumeClaim", "vitrine-blobs").doc
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_k8s_web_listens_where_its_probes_and_service_look():
    cfg = load_config(env=config_map())
    container = containers(pod_spec(k8s_object("Deployment", "web")))[-1]
    assert python_module(container["command"]) == "services.web"
    assert (cfg.web.host, cfg.web.port) == ("0.0.0.0", 8080)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == cfg.web.port
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    service = k8s_object("Service", "web").doc["spec"]["ports"]
    assert [(p["port"], p["targetPort"]) for p in service] == [(8080, "http")]
    host, _, port = cfg.web.search_addr.rpartition(":")
    search_ports = k8s_object("Service", host).doc["spec"]["ports"]
    assert any(p["name"] == "grpc" and p["port"] == int(port) for p in search_ports)
