"""Dockerfiles and .dockerignore: every path, stage, module and user they name is real."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.deploy.deploy_files import (
    DOCKER,
    REPO,
    Instruction,
    arg_defaults,
    dockerignore_patterns,
    exec_form,
    expand_args,
    is_dockerignored,
    module_path,
    parse_dockerfile,
    python_module,
    stages,
    unknown_env_names,
)

DOCKERFILES = {"cpu": DOCKER / "Dockerfile.cpu", "cuda": DOCKER / "Dockerfile.cuda"}
FINAL_BASE = {"cpu": r"python:3\.11-slim", "cuda": r"nvidia/cuda:[0-9.]+-(cudnn-)?runtime-ubuntu"}


def final_stage(path: Path) -> list[Instruction]:
    return stages(parse_dockerfile(path))[-1][1]


def instructions(path: Path, name: str) -> list[Instruction]:
    return [ins for ins in parse_dockerfile(path) if ins.name == name]


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_copy_sources_exist_in_the_context_and_are_not_ignored(variant):
    patterns = dockerignore_patterns()
    copies = [ins for ins in instructions(DOCKERFILES[variant], "COPY") if "from" not in ins.flags]
    assert copies, "no COPY from the build context"
    for ins in copies:
        *sources, _dest = ins.args.split()
        for src in sources:
            assert (REPO / src).exists(), f"{variant} line {ins.line}: COPY source {src} missing"
            assert not is_dockerignored(src, patterns), f"{variant}: {src} is excluded by .dockerignore"


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_copy_from_names_an_earlier_stage(variant):
    seen: list[str] = []
    for name, body in stages(parse_dockerfile(DOCKERFILES[variant])):
        for ins in body:
            if ins.name == "COPY" and "from" in ins.flags:
                assert ins.flags["from"] in seen, (
                    f"{variant} line {ins.line}: unknown stage {ins.flags['from']}"
                )
        seen.append(name)
    assert len(seen) >= 3, "expected bundle, builder and runtime stages"


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_final_stage_base_is_pinned(variant):
    parsed = parse_dockerfile(DOCKERFILES[variant])
    image = expand_args(final_stage(DOCKERFILES[variant])[0].args.split()[0], arg_defaults(parsed))
    assert re.match(FINAL_BASE[variant], image), f"{variant}: final base {image}"
    assert ":" in image and not image.endswith(":latest"), f"{variant}: unpinned base {image}"


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_runs_as_a_created_non_root_user(variant):
    body = final_stage(DOCKERFILES[variant])
    users = [ins.args.split(":")[0] for ins in body if ins.name == "USER"]
    assert users and users[-1] not in {"root", "0"}, f"{variant}: final USER is {users}"
    created = " ".join(ins.args for ins in body if ins.name == "RUN")
    assert re.search(rf"useradd .*--uid {users[-1]}\b", created), f"{variant}: uid {users[-1]} not created"


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_builds_the_project_and_generates_protos(variant):
    runs = " ".join(ins.args for ins in instructions(DOCKERFILES[variant], "RUN"))
    assert re.search(r"pip install [^&]*\.(\s|$)", runs), f"{variant}: no `pip install .`"
    assert "scripts/gen_protos.py" in runs and (REPO / "scripts" / "gen_protos.py").exists()
    copied = " ".join(ins.args for ins in final_stage(DOCKERFILES[variant]) if ins.name == "COPY")
    assert "/src/vitrine" in copied, f"{variant}: generated vitrine package not copied to the runtime"


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_cmd_runs_an_existing_service_module(variant):
    cmds = instructions(DOCKERFILES[variant], "CMD")
    argv = exec_form(cmds[-1].args)
    assert argv is not None, f"{variant}: CMD must be exec form"
    module = python_module(argv)
    assert module == "services.embedder", f"{variant}: CMD runs {module}"
    assert module_path(module).is_dir(), f"{variant}: {module} is not a package directory"


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_healthcheck_uses_the_grpc_health_module(variant):
    checks = instructions(DOCKERFILES[variant], "HEALTHCHECK")
    assert checks, f"{variant}: no HEALTHCHECK"
    assert "services.common.healthcheck" in checks[-1].args
    assert module_path("services.common.healthcheck").is_file()
    env = " ".join(ins.args for ins in final_stage(DOCKERFILES[variant]) if ins.name == "ENV")
    assert re.search(r"HEALTHCHECK_ADDR=127\.0\.0\.1:50051\b", env), f"{variant}: HEALTHCHECK_ADDR default"


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_bundle_at_slash_bundle_and_servers_bind_all_interfaces(variant):
    env = " ".join(ins.args for ins in final_stage(DOCKERFILES[variant]) if ins.name == "ENV")
    assert "VITRINE_EMBEDDER_BUNDLE=/bundle" in env
    for kind in ("EMBEDDER", "INGEST", "SEARCH"):
        assert f"VITRINE_{kind}_SERVER_HOST=0.0.0.0" in env, f"{variant}: {kind} would bind loopback only"
    assert unknown_env_names(DOCKERFILES[variant].read_text()) == []


def test_images_python_satisfies_requires_python():
    spec = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    low, high = (tuple(map(int, v.split("."))) for v in re.findall(r"[<>]=?\s*([0-9.]+)", spec))
    cpu = re.search(
        r"python:(\d+)\.(\d+)", arg_defaults(parse_dockerfile(DOCKERFILES["cpu"]))["PYTHON_IMAGE"]
    )
    cuda = re.search(r"python(\d+)\.(\d+)", arg_defaults(parse_dockerfile(DOCKERFILES["cuda"]))["PYTHON"])
    for found in (cpu, cuda):
        assert found, "interpreter version not found"
        version = (int(found.group(1)), int(found.group(2)))
        assert low <= version < high, f"python {version} outside {spec}"


def test_dockerignore_keeps_heavy_and_private_folders_out():
    patterns = dockerignore_patterns()
    for path in (".venv", "data/bundles/default", ".git", "bench/results/run.json"):
        assert is_dockerignored(path, patterns), f"{path} would be sent to the build context"
    for path in ("services/embedder/__main__.py", "protos/vitrine/v1/search.proto", "pyproject.toml"):
        assert not is_dockerignored(path, patterns), f"{path} is needed by the build"
