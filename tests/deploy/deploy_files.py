"""Readers for the deployment files (compose, k8s manifests, Dockerfiles) shared by tests/deploy."""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from services.common.config import env_var_table

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
DOCKER = DEPLOY / "docker"
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERIGNORE = REPO / ".dockerignore"
HELM_VALUES = K8S / "qdrant-values.yaml"
KUSTOMIZATION = "kustomization.yaml"
NAMESPACE = "vitrine"
SERVICE_KINDS = ("embedder", "ingest", "search")
GRPC_PORTS = {"embedder": 50051, "ingest": 50052, "search": 50053}
METRICS_PORTS = {"embedder": 9101, "ingest": 9102, "search": 9103}
QDRANT_HTTP_PORT = 6333
VITRINE_NAME = re.compile(r"\bVITRINE_[A-Z0-9_]+\b")
# Read by load_config itself rather than mapped to a field.
EXTRA_ENV_NAMES = frozenset({"VITRINE_CONFIG"})
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "Pod")


@functools.cache
def known_env_names() -> frozenset[str]:
    """Every VITRINE_* variable the configuration understands."""
    return frozenset(name for name, _, _ in env_var_table()) | EXTRA_ENV_NAMES


def unknown_env_names(text: str) -> list[str]:
    """VITRINE_* names in ``text`` that the configuration does not know (typos)."""
    return sorted(set(VITRINE_NAME.findall(text)) - known_env_names())


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    """All non-empty documents of a YAML file."""
    with path.open() as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


@functools.cache
def compose() -> dict[str, Any]:
    """docker-compose.yml, parsed (anchors and merge keys resolved)."""
    return load_yaml_docs(COMPOSE_FILE)[0]


_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose variable substitution as it happens when no variable is set (defaults apply)."""
    return _INTERPOLATION.sub(lambda m: m.group("default") or "", value).replace("$$", "$")


def python_module(argv: list[str] | None) -> str | None:
    """The module of a ``python -m MODULE ...`` command line, else None."""
    if not argv or not Path(str(argv[0])).name.startswith("python") or "-m" not in argv:
        return None
    index = argv.index("-m")
    return str(argv[index + 1]) if index + 1 < len(argv) else None


def service_kind(module: str | None) -> str | None:
    """``services.search`` -> ``search`` for the three vitrine services, else None."""
    if module and module.startswith("services.") and module.split(".")[1] in SERVICE_KINDS:
        return module.split(".")[1]
    return None


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value following ``flag`` in an argv list."""
    return str(argv[argv.index(flag) + 1]) if flag in argv and argv.index(flag) + 1 < len(argv) else None


def module_path(module: str) -> Path:
    """Where a dotted module lives in the repository (a package directory or a .py file)."""
    base = REPO.joinpath(*module.split("."))
    return base if base.is_dir() else base.with_suffix(".py")


@dataclass(frozen=True)
class K8sObject:
    """One document of a manifest file."""

    path: Path
    doc: dict[str, Any] = field(hash=False)

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def name(self) -> str:
        return str((self.doc.get("metadata") or {}).get("name", ""))

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}: {self.kind}/{self.name}"


def k8s_manifest_files(root: Path = K8S) -> list[Path]:
    """Manifest files under ``root`` (kustomizations, the Helm values file and patches excluded)."""
    patches = {p for k in root.rglob(KUSTOMIZATION) for p in kustomize_patch_files(k)}
    return sorted(
        p for p in root.rglob("*.yaml") if p.name != KUSTOMIZATION and p != HELM_VALUES and p not in patches
    )


@functools.cache
def k8s_objects() -> tuple[K8sObject, ...]:
    """Every object of every manifest file under deploy/k8s."""
    return tuple(K8sObject(path, doc) for path in k8s_manifest_files() for doc in load_yaml_docs(path))


def base_objects() -> list[K8sObject]:
    """Objects of the files the base kustomization lists."""
    listed = {K8S / r for r in load_yaml_docs(K8S / KUSTOMIZATION)[0].get("resources", [])}
    return [o for o in k8s_objects() if o.path in listed]


def by_kind(objects: list[K8sObject] | tuple[K8sObject, ...], kind: str) -> dict[str, K8sObject]:
    """Objects of one kind, by name."""
    return {o.name: o for o in objects if o.kind == kind}


def k8s_object(kind: str, name: str) -> K8sObject:
    """The one object of that kind and name under deploy/k8s."""
    found = by_kind(k8s_objects(), kind).get(name)
    if found is None:
        raise LookupError(f"{kind}/{name} is not defined under {K8S.relative_to(REPO)}")
    return found


def pod_spec(obj: K8sObject) -> dict[str, Any] | None:
    """The pod spec of a workload (or of a bare Pod), else None."""
    if obj.kind == "Pod":
        return obj.doc.get("spec")
    if obj.kind in WORKLOAD_KINDS:
        return obj.doc.get("spec", {}).get("template", {}).get("spec")
    return None


def pod_labels(obj: K8sObject) -> dict[str, str]:
    """The labels its pods carry."""
    if obj.kind == "Pod":
        return obj.doc.get("metadata", {}).get("labels", {})
    return obj.doc.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})


def workloads(objects: list[K8sObject] | tuple[K8sObject, ...]) -> list[K8sObject]:
    """Deployments, StatefulSets, Jobs and Pods."""
    return [o for o in objects if o.kind in WORKLOAD_KINDS]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Init and regular containers of a pod spec."""
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """True when every selector label is on the pod."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def probes(container: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(probe kind, probe) for each probe the container declares."""
    for key in ("startupProbe", "readinessProbe", "livenessProbe"):
        if key in container:
            yield key, container[key]


def probe_port(probe: dict[str, Any]) -> int | str | None:
    """The port a probe targets, whatever its handler."""
    for handler in ("grpc", "httpGet", "tcpSocket"):
        if handler in probe:
            return probe[handler].get("port")
    return None


def container_ports(container: dict[str, Any]) -> set[int | str]:
    """Port numbers and names a container declares."""
    out: set[int | str] = set()
    for port in container.get("ports", []):
        out.add(port["containerPort"])
        if "name" in port:
            out.add(port["name"])
    return out


def kustomize_patch_files(kustomization: Path) -> list[Path]:
    """Patch files (``patches: - path:``) a kustomization refers to."""
    doc = load_yaml_docs(kustomization)[0]
    return [kustomization.parent / p["path"] for p in doc.get("patches", []) if "path" in p]


def kustomize_patches(kustomization: Path) -> list[dict[str, Any]]:
    """Every patch document of a kustomization, from files and inline ``patch:`` strings."""
    doc = load_yaml_docs(kustomization)[0]
    out: list[dict[str, Any]] = []
    for entry in doc.get("patches", []):
        if "path" in entry:
            out.extend(load_yaml_docs(kustomization.parent / entry["path"]))
        else:
            out.extend(d for d in yaml.safe_load_all(entry["patch"]) if d)
    return out


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: name, ``--flag=value`` options and the rest of the line."""

    name: str
    flags: dict[str, str]
    args: str
    line: int


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions of a Dockerfile, continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        start = start or number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        words = (pending + stripped).split(None, 1)
        pending, line = "", start
        start = 0
        name, rest = words[0].upper(), words[1] if len(words) > 1 else ""
        flags: dict[str, str] = {}
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            key, _, value = flag[2:].partition("=")
            flags[key] = value
            rest = rest.lstrip()
        out.append(Instruction(name, flags, rest, line))
    return out


def exec_form(args: str) -> list[str] | None:
    """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD, else None."""
    text = args.strip()
    if not text.startswith("["):
        return None
    return [str(a) for a in json.loads(text)]


def stages(instructions: list[Instruction]) -> list[tuple[str, list[Instruction]]]:
    """(stage name or index, its instructions) for each FROM."""
    out: list[tuple[str, list[Instruction]]] = []
    for ins in instructions:
        if ins.name == "FROM":
            parts = ins.args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(out))
            out.append((name, [ins]))
        elif out:
            out[-1][1].append(ins)
    return out


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    """Default values of ARGs declared with one."""
    out: dict[str, str] = {}
    for ins in instructions:
        if ins.name == "ARG" and "=" in ins.args:
            key, _, value = ins.args.partition("=")
            out[key.strip()] = value.strip().strip('"')
    return out


def expand_args(text: str, args: dict[str, str]) -> str:
    """Substitute ``${NAME}`` / ``$NAME`` build arguments."""
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), text)


def dockerignore_patterns() -> list[str]:
    """Patterns of .dockerignore (comments and blanks dropped)."""
    lines = DOCKERIGNORE.read_text().splitlines() if DOCKERIGNORE.exists() else []
    return [ln.strip().rstrip("/") for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def is_dockerignored(relpath: str, patterns: list[str]) -> bool:
    """Whether a context path, or a folder above it, matches a .dockerignore pattern (no '!' rules)."""
    parts = Path(relpath.strip("/")).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, pat.lstrip("/")) for pat in patterns for prefix in prefixes)
