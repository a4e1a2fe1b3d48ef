"""deploy/k8s/training/train-job.yaml: an indexed Job of torchrun pods that can find each other."""

from __future__ import annotations

import argparse

from torch.distributed.run import get_args_parser

from tests.deploy.deploy_files import K8S, REPO, base_objects, containers, k8s_object, pod_spec
from training import build_default
from training.config import load_config

JOB = k8s_object("Job", "vitrine-train")
SERVICE = k8s_object("Service", "vitrine-train")
CONTAINER = containers(pod_spec(JOB))[0]


def torchrun_args() -> argparse.Namespace:
    """The container's command line as torchrun itself parses it."""
    assert CONTAINER["command"] == ["torchrun"]
    return get_args_parser().parse_args(CONTAINER["args"])


def build_args() -> argparse.Namespace:
    """The training module's arguments as training.build_default parses them."""
    return build_default.make_parser().parse_args(torchrun_args().training_script_args)


def test_job_is_indexed_with_one_pod_per_node():
    spec = JOB.doc["spec"]
    run = torchrun_args()
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == int(run.nnodes), "pods = torchrun --nnodes"
    assert pod_spec(JOB)["restartPolicy"] == "Never"


def test_pods_find_the_rendezvous_through_the_headless_service():
    run = torchrun_args()
    host, port = run.rdzv_endpoint.rsplit(":", 1)
    service = SERVICE.doc["spec"]
    assert run.rdzv_backend == "c10d"
    assert service["clusterIP"] == "None" and service["publishNotReadyAddresses"] is True
    assert pod_spec(JOB)["subdomain"] == SERVICE.name
    assert host == f"{JOB.name}-0.{SERVICE.name}", "pod index 0 of the Job under the Service"
    (served,) = service["ports"]
    declared = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    assert served["port"] == int(port) == declared[served["targetPort"]]


def test_it_runs_the_bundle_build_on_every_gpu_of_the_node():
    run = torchrun_args()
    assert run.module and run.training_script == "training.build_default"
    assert run.nproc_per_node == "gpu"
    resources = CONTAINER["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] >= 1
    args = build_args()
    load_config(REPO / args.config)  # the config file ships in the image's training/configs
    mounts = {m["mountPath"]: m["name"] for m in CONTAINER["volumeMounts"]}
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod_spec(JOB)["volumes"]
        if "persistentVolumeClaim" in v
    }
    shared = next(path for path, name in mounts.items() if name in claims)
    for where in (args.data, args.out, args.work, args.cache):
        assert str(where).startswith(shared + "/"), f"{where} is not on the shared claim at {shared}"
    claim = k8s_object("PersistentVolumeClaim", claims[mounts[shared]])
    assert claim.doc["spec"]["accessModes"] == ["ReadWriteMany"], "every node reads the catalog and caches"
    assert "/dev/shm" in mounts and "/tmp" in mounts, "NCCL shared memory; writable temp on a read-only root"


def test_training_objects_are_not_in_the_base():
    assert not {JOB, SERVICE} & set(base_objects())
    assert (K8S / "training" / "train-job.yaml").is_file()
