"""deploy/k8s, service by service: embedder probes and scaling, settings, the Qdrant cluster, variants."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from services.common.config import load_config
from tests.deploy.deploy_files import (
    GRPC_PORTS,
    HELM_VALUES,
    K8S,
    KUSTOMIZATION,
    METRICS_PORTS,
    QDRANT_HTTP_PORT,
    SERVICE_KINDS,
    compose,
    containers,
    flag_value,
    k8s_object,
    kustomize_patches,
    load_yaml_docs,
    pod_spec,
    python_module,
)


def main_container(kind: str, name: str) -> dict[str, Any]:
    return containers(pod_spec(k8s_object(kind, name)))[-1]


def config_data() -> dict[str, str]:
    return k8s_object("ConfigMap", "vitrine-config").doc["data"]


def service_port(name: str, port_name: str) -> int:
    ports = k8s_object("Service", name).doc["spec"]["ports"]
    return next(int(p["port"]) for p in ports if p["name"] == port_name)


def test_embedder_readiness_and_liveness_are_native_grpc_probes():
    container = main_container("Deployment", "embedder")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe].get("grpc", {}).get("port") == GRPC_PORTS["embedder"], probe
    assert k8s_object("Deployment", "embedder").doc["spec"]["replicas"] == 2


def test_each_service_runs_its_module_on_its_ports_with_grpc_probes():
    for kind in SERVICE_KINDS:
        container = main_container("Deployment", kind)
        argv = [*container["command"], *container.get("args", [])]
        assert python_module(argv) == f"services.{kind}", kind
        assert flag_value(argv, "--port") == str(GRPC_PORTS[kind]), kind
        assert container["readinessProbe"]["grpc"]["port"] == GRPC_PORTS[kind], kind
        assert service_port(kind, "grpc") == GRPC_PORTS[kind], kind
        assert {"name": "metrics", "containerPort": METRICS_PORTS[kind], "protocol": "TCP"} in container[
            "ports"
        ]


def test_prometheus_annotations_match_the_metrics_port():
    data = config_data()
    for kind in SERVICE_KINDS:
        deployment = k8s_object("Deployment", kind)
        notes = deployment.doc["spec"]["template"]["metadata"]["annotations"]
        assert notes["prometheus.io/scrape"] == "true", kind
        assert notes["prometheus.io/port"] == str(METRICS_PORTS[kind]), kind
        assert data[f"VITRINE_{kind.upper()}_SERVER_METRICS_PORT"] == str(METRICS_PORTS[kind]), kind


def test_config_map_values_are_strings_that_load_as_config():
    data = config_data()
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"
    cfg = load_config(env=data)
    assert (cfg.store.backend, cfg.store.shards, cfg.store.replication_factor) == ("qdrant", 6, 2)
    assert cfg.embedder.bundle == "/bundle"
    for kind in SERVICE_KINDS:
        server = getattr(cfg, f"{kind}_server")
        assert (server.host, server.port) == ("0.0.0.0", GRPC_PORTS[kind]), kind


def test_embedder_addresses_and_store_url_point_at_services():
    cfg = load_config(env=config_data())
    for addr in (cfg.ingest.embedder_addr, cfg.search.embedder_addr):
        host, _, port = addr.rpartition(":")
        assert service_port(host, "grpc") == int(port), addr
    url = urlsplit(cfg.store.url)
    assert url.port == QDRANT_HTTP_PORT == service_port(str(url.hostname), "http")


def test_vitrine_pods_mount_the_bundle_read_only():
    for kind in SERVICE_KINDS:
        spec = pod_spec(k8s_object("Deployment", kind))
        mounts = {m["mountPath"]: m for m in main_container("Deployment", kind)["volumeMounts"]}
        assert mounts["/bundle"].get("readOnly") is True, kind
        volume = next(v for v in spec["volumes"] if v["name"] == mounts["/bundle"]["name"])
        assert volume["persistentVolumeClaim"]["claimName"] == "vitrine-bundle", kind


def test_qdrant_runs_as_a_three_peer_cluster():
    sts = k8s_object("StatefulSet", "qdrant").doc
    assert sts["spec"]["replicas"] == 3
    headless = k8s_object("Service", sts["spec"]["serviceName"]).doc["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    assert service_port(sts["spec"]["serviceName"], "p2p") == 6335
    container = main_container("StatefulSet", "qdrant")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["QDRANT__CLUSTER__ENABLED"] == "true" and env["QDRANT__CLUSTER__P2P__PORT"] == "6335"
    assert {"name": "p2p", "containerPort": 6335, "protocol": "TCP"} in container["ports"]
    script = " ".join(container["args"])
    assert "--bootstrap" in script and f"qdrant-0.{sts['spec']['serviceName']}:6335" in script
    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    assert {m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/qdrant/storage"} <= claims
    assert load_config(env=config_data()).store.replication_factor <= sts["spec"]["replicas"]


def test_helm_values_describe_the_same_cluster():
    values = load_yaml_docs(HELM_VALUES)[0]
    assert values["replicaCount"] == 3
    assert values["config"]["cluster"]["enabled"] is True
    assert values["config"]["cluster"]["p2p"]["port"] == 6335
    assert values["persistence"]["size"]
    statefulset_image = main_container("StatefulSet", "qdrant")["image"]
    assert f"{values['image']['repository']}:{values['image']['tag']}" == statefulset_image
    assert compose()["services"]["qdrant"]["image"] == statefulset_image


def test_gpu_overlay_gives_the_embedder_a_gpu_in_fp16():
    patches = kustomize_patches(K8S / "overlays" / "gpu" / KUSTOMIZATION)
    deployment = next(p for p in patches if p["kind"] == "Deployment" and p["metadata"]["name"] == "embedder")
    container = next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "embedder"
    )
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["VITRINE_EMBEDDER_DEVICE"], env["VITRINE_EMBEDDER_PRECISION"]) == ("cuda", "fp16")
    assert container["image"].split(":")[0] == compose()["services"]["embedder-gpu"]["image"].split(":")[0]


def test_helm_overlay_removes_every_hand_written_qdrant_object():
    patches = kustomize_patches(K8S / "overlays" / "helm-qdrant" / KUSTOMIZATION)
    deleted = {(p["kind"], p["metadata"]["name"]) for p in patches if p.get("$patch") == "delete"}
    qdrant_objects = {
        (o.kind, o.name)
        for o in (
            k8s_object("StatefulSet", "qdrant"),
            k8s_object("Service", "qdrant"),
            k8s_object("Service", "qdrant-headless"),
            k8s_object("PodDisruptionBudget", "qdrant"),
        )
    }
    assert deleted == qdrant_objects
