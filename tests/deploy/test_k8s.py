"""deploy/k8s manifests: schema-valid, and every name they refer to exists."""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.deploy.deploy_files import (
    K8S,
    KUSTOMIZATION,
    NAMESPACE,
    base_objects,
    by_kind,
    container_ports,
    containers,
    k8s_manifest_files,
    k8s_objects,
    kustomize_patch_files,
    kustomize_patches,
    load_yaml_docs,
    module_path,
    pod_labels,
    pod_spec,
    probe_port,
    probes,
    python_module,
    selects,
    unknown_env_names,
    workloads,
)

# Oldest Kubernetes the README promises, and the newest schema the validator ships.
K8S_VERSIONS = ("1.30.0", "1.37.0")
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding"}
OBJECTS = k8s_objects()


def test_manifests_exist_and_every_doc_is_identified():
    assert len(OBJECTS) >= 10
    for obj in OBJECTS:
        assert obj.doc.get("apiVersion") and obj.kind and obj.name, f"{obj}: apiVersion/kind/metadata.name"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_passes_the_strict_api_schema(version):
    for obj in OBJECTS:
        try:
            kubernetes_validate.validate(obj.doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj} (k8s {version}): {exc.message}")


def test_names_are_unique_and_in_the_vitrine_namespace():
    keys = [(o.kind, o.name) for o in OBJECTS]
    assert len(keys) == len(set(keys)), "duplicate kind/name"
    assert NAMESPACE in by_kind(OBJECTS, "Namespace")
    for obj in OBJECTS:
        if obj.kind not in CLUSTER_SCOPED:
            assert obj.doc["metadata"].get("namespace") == NAMESPACE, f"{obj}: namespace"


def test_workload_selectors_match_their_pod_labels():
    for obj in workloads(OBJECTS):
        if obj.kind in ("Deployment", "StatefulSet"):  # a Job's selector is generated
            selector = obj.doc["spec"]["selector"]["matchLabels"]
            assert selects(selector, pod_labels(obj)), f"{obj}: selector {selector} misses its pods"


def test_service_selectors_and_target_ports_match_pods():
    for svc in by_kind(OBJECTS, "Service").values():
        pods = [w for w in workloads(OBJECTS) if selects(svc.doc["spec"].get("selector", {}), pod_labels(w))]
        assert pods, f"{svc}: selector matches no Deployment/StatefulSet"
        offered = {p for w in pods for c in containers(pod_spec(w)) for p in container_ports(c)}
        for port in svc.doc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert target in offered, f"{svc}: targetPort {target} not among {offered}"


def test_probe_ports_are_declared_container_ports():
    for obj in workloads(OBJECTS):
        for container in containers(pod_spec(obj)):
            for kind, probe in probes(container):
                port = probe_port(probe)
                assert port in container_ports(container), f"{obj} {container['name']} {kind}: port {port}"


def test_config_maps_claims_and_mounts_exist():
    config_maps = by_kind(OBJECTS, "ConfigMap")
    claims = by_kind(OBJECTS, "PersistentVolumeClaim")
    for obj in workloads(OBJECTS):
        spec = pod_spec(obj)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        templates = {t["metadata"]["name"] for t in obj.doc.get("spec", {}).get("volumeClaimTemplates", [])}
        for volume in volumes.values():
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, f"{obj}: config map of {volume['name']}"
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert claim in claims, f"{obj}: claim {claim} not defined"
        for container in containers(spec):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, f"{obj}: envFrom config map"
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes or mount["name"] in templates, f"{obj}: mount {mount['name']}"


def test_hpa_targets_an_existing_deployment():
    hpas = by_kind(OBJECTS, "HorizontalPodAutoscaler")
    assert "embedder" in hpas
    for hpa in hpas.values():
        assert hpa.doc["apiVersion"] == "autoscaling/v2"
        ref = hpa.doc["spec"]["scaleTargetRef"]
        assert ref["kind"] == "Deployment" and ref["name"] in by_kind(OBJECTS, "Deployment"), f"{hpa}: {ref}"
    metrics = hpas["embedder"].doc["spec"]["metrics"]
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in metrics)


def test_pod_disruption_budgets_select_pods():
    budgets = by_kind(OBJECTS, "PodDisruptionBudget")
    assert "search" in budgets
    for pdb in budgets.values():
        selector = pdb.doc["spec"]["selector"]["matchLabels"]
        assert any(selects(selector, pod_labels(w)) for w in workloads(OBJECTS)), f"{pdb}: selects no pods"


def test_pods_are_non_root_read_only_and_bounded():
    for obj in workloads(OBJECTS):
        spec = pod_spec(obj)
        assert spec["securityContext"]["runAsNonRoot"] is True, f"{obj}: runAsNonRoot"
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", f"{obj}: seccomp"
        for container in containers(spec):
            where = f"{obj} {container['name']}"
            ctx = container.get("securityContext", {})
            assert ctx.get("readOnlyRootFilesystem") is True, f"{where}: writable root filesystem"
            assert ctx.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation"
            assert ctx.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities"
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{where}: {bound}"


def test_commands_run_existing_modules_and_env_names_are_config_variables():
    for obj in workloads(OBJECTS):
        for container in containers(pod_spec(obj)):
            module = python_module(container.get("command", []))
            if module:
                assert module_path(module).is_dir(), f"{obj}: {module} is not a package directory"
    for path in k8s_manifest_files() + [
        p for k in K8S.rglob(KUSTOMIZATION) for p in kustomize_patch_files(k)
    ]:
        assert unknown_env_names(path.read_text()) == [], f"{path}: unknown VITRINE_* settings"


def test_base_kustomization_lists_exactly_the_manifest_files():
    resources = load_yaml_docs(K8S / KUSTOMIZATION)[0]["resources"]
    on_disk = {
        p.name for p in K8S.glob("*.yaml") if p.name != KUSTOMIZATION and p != K8S / "qdrant-values.yaml"
    }
    assert all((K8S / r).is_file() for r in resources), f"listed but missing: {resources}"
    assert len(resources) == len(set(resources)), "listed twice"
    assert set(resources) == on_disk, f"not listed: {on_disk - set(resources)}"


def overlay_dirs() -> list:
    return sorted(k.parent for k in (K8S / "overlays").rglob(KUSTOMIZATION))


def test_overlays_build_on_the_base_and_patch_existing_objects():
    assert {d.name for d in overlay_dirs()} >= {"gpu", "helm-qdrant"}
    base = {(o.kind, o.name) for o in base_objects()}
    for overlay in overlay_dirs():
        doc = load_yaml_docs(overlay / KUSTOMIZATION)[0]
        for resource in doc["resources"]:
            assert ((overlay / resource).resolve() / KUSTOMIZATION).is_file(), f"{overlay}: {resource}"
        assert all(p.is_file() for p in kustomize_patch_files(overlay / KUSTOMIZATION)), overlay
        patches = kustomize_patches(overlay / KUSTOMIZATION)
        assert patches, f"{overlay}: no patches"
        for patch in patches:
            key = (patch["kind"], patch["metadata"]["name"])
            assert key in base, f"{overlay}: patch targets {key}, not in the base"


def test_tools_are_not_in_the_base_but_use_its_claims():
    tools = [o for o in OBJECTS if o.path.parent.name == "tools"]
    assert tools and not set(tools) & set(base_objects())
    claims = by_kind(base_objects(), "PersistentVolumeClaim")
    for tool in tools:
        used = [v["persistentVolumeClaim"]["claimName"] for v in pod_spec(tool)["volumes"]]
        assert used and all(c in claims for c in used), f"{tool}: {used}"
