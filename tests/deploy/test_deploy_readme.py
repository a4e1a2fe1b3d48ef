"""deploy/README.md stays accurate: the files, settings, kustomize targets and ports it names exist."""

from __future__ import annotations

import re

from tests.deploy.deploy_files import (
    DEPLOY,
    GRPC_PORTS,
    KUSTOMIZATION,
    METRICS_PORTS,
    REPO,
    unknown_env_names,
)

README = DEPLOY / "README.md"
TEXT = README.read_text()
REPO_PATH = re.compile(
    r"(?<![\w/.-])((?:deploy|scripts|services|data/bundles)/[\w./-]*[\w/]|docker-compose\.yml)"
)
GENERATED_OR_RUNTIME = ("data/bundles/",)


def test_every_repository_path_mentioned_exists():
    paths = sorted(set(REPO_PATH.findall(TEXT)))
    assert len(paths) > 10
    missing = [p for p in paths if not p.startswith(GENERATED_OR_RUNTIME) and not (REPO / p).exists()]
    assert missing == [], f"README names missing paths: {missing}"


def test_every_setting_mentioned_is_a_config_variable():
    assert unknown_env_names(TEXT) == []


def test_kustomize_targets_are_kustomizations():
    targets = re.findall(r"kubectl apply -k (\S+)", TEXT)
    assert {"deploy/k8s", "deploy/k8s/overlays/gpu", "deploy/k8s/overlays/helm-qdrant"} <= set(targets)
    for target in targets:
        assert (REPO / target / KUSTOMIZATION).is_file(), target


def test_port_table_matches_the_deployment_files():
    for kind in GRPC_PORTS:
        row = next(line for line in TEXT.splitlines() if line.startswith(f"| {kind} "))
        assert f"| {GRPC_PORTS[kind]} " in row and f"| {METRICS_PORTS[kind]} " in row, row
        assert f"--port {GRPC_PORTS[kind]}" in row, row


def test_grpcurl_health_examples_name_real_services_on_their_ports():
    calls = re.findall(
        r"grpcurl -plaintext (?:-d '(\{[^']*\})'\s+)?localhost:(\d+) grpc\.health\.v1\.Health/", TEXT
    )
    assert len(calls) >= 5, f"grpcurl health examples: {calls}"
    by_name = {"vitrine.v1.Embedder": 50051, "vitrine.v1.Ingest": 50052, "vitrine.v1.Search": 50053}
    for body, port in calls:
        named = re.search(r'"service": "([\w.]+)"', body or "")
        if named:
            assert by_name[named.group(1)] == int(port), f"{named.group(1)} is not on {port}"
        assert int(port) in GRPC_PORTS.values()
