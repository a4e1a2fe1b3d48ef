"""Data-parallel training (training.distributed): shards, gathered gradients, and a 2-process torchrun
build of the tiny config against a single-process build with the same global batch.

Tolerances of the torchrun comparison: the gradient step itself is exact (test
``test_gathered_loss_gives_single_process_gradients``: 1e-5), but BatchNorm in the tiny members'
convnets normalizes over each rank's shard (21 images) instead of the global batch (42), as
DistributedDataParallel does without SyncBatchNorm, and the runs use different thread counts. So:
first-step loss within 5 %, the loss curve within 10 % on average, each member's last-epoch loss
within 10 %, and the members' mean final val text->image mAP@10 within 0.08.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from domain.bundle import load_bundle
from domain.members import WEIGHTS_FILE
from services.embedder.core import EmbedderCore
from services.embedder.encoder import EnsembleEncoder
from tests.support.ddp_gradients import single_process_step
from tests.support.embedder import EMBEDDER_TEST_CFG
from tests.support.images import encode, gradient
from training import build_default, distributed
from training.data.images import Pixels, augment
from training.data.synthetic import write_synthetic_catalog
from training.train import read_loss_curve

REPO = Path(__file__).resolve().parents[2]
TINY_JSON = REPO / "training" / "configs" / "tiny.json"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _world(monkeypatch, rank: int, world: int) -> None:
    monkeypatch.setattr(distributed, "rank", lambda: rank)
    monkeypatch.setattr(distributed, "world", lambda: world)


def test_single_process_is_rank_zero_of_one():
    assert not distributed.launched() and not distributed.active()
    assert (distributed.rank(), distributed.world(), distributed.is_main()) == (0, 1, True)
    x = torch.ones(3, 2, requires_grad=True)
    assert distributed.gather_with_grad(x) is x
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.shard_rows(6).tolist() == list(range(6))


def test_shards_cover_the_global_batch_and_every_class(monkeypatch):
    batch = np.repeat(np.arange(7), 6)  # P=7 classes x K=6, as the P x K sampler lays them out
    shards = []
    for rank in range(3):
        _world(monkeypatch, rank, 3)
        rows = distributed.shard_rows(len(batch))
        assert len(rows) == 14 and set(batch[rows]) == set(range(7)), "every rank sees every class"
        shards.append(rows)
    order = distributed.gathered_order(len(batch))
    assert np.array_equal(np.concatenate(shards), order)
    assert sorted(order.tolist()) == list(range(len(batch)))
    with pytest.raises(ValueError, match="batch size 42 must be divisible by the number of processes"):
        _world(monkeypatch, 0, 4)
        distributed.shard_rows(42)


def test_a_shard_is_augmented_as_in_the_full_batch():
    array = np.random.default_rng(0).integers(0, 255, (10, 8, 8, 3), dtype=np.uint8)
    transform = SimpleNamespace(mean=torch.zeros(3, 1, 1), std=torch.ones(3, 1, 1))  # identity normalizer
    pixels = Pixels(array, np.ones(10, bool), transform)
    positions = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    full = augment(pixels, positions, torch.Generator().manual_seed(7), 2, 0.2)
    rows = np.array([1, 3, 5, 7])
    shard = augment(pixels, positions, torch.Generator().manual_seed(7), 2, 0.2, rows=rows)
    assert torch.equal(shard, full[rows])


def _torchrun(module_args: list[str], timeout: float) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*TORCHRUN, *module_args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"torchrun failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


def test_gathered_loss_gives_single_process_gradients(tmp_path: Path):
    _torchrun(["-m", "tests.support.ddp_gradients", str(tmp_path / "grads.pt")], timeout=120)
    shared = torch.load(tmp_path / "grads.pt")
    loss, grads = single_process_step()
    assert shared["world"] == 2
    assert shared["loss"] == pytest.approx(loss, rel=1e-5)
    for name, grad in grads.items():
        assert torch.allclose(shared["grads"][name], grad, atol=1e-5), name


def _build_args(catalog: Path, root: Path) -> list[str]:
    return [
        *("--data", str(catalog), "--config", str(TINY_JSON)),
        *("--out", str(root / "bundle"), "--work", str(root / "work"), "--cache", str(root / "cache")),
    ]


def _runs(root: Path) -> dict[str, Path]:
    (fingerprint,) = list((root / "work").iterdir())
    return {p.name: p for p in sorted(fingerprint.iterdir()) if (p / "history.json").exists()}


def _history(run: Path) -> list[dict]:
    return json.loads((run / "history.json").read_text())


def test_torchrun_two_processes_match_one_process_and_serve(tmp_path: Path):
    catalog = write_synthetic_catalog(tmp_path / "catalog", 420, seed=0)
    assert build_default.main(_build_args(catalog, tmp_path / "single")) == 0
    _torchrun(["-m", "training.build_default", *_build_args(catalog, tmp_path / "ddp")], timeout=300)
    single, ddp = _runs(tmp_path / "single"), _runs(tmp_path / "ddp")
    assert list(single) == list(ddp) == ["m1", "m2", "m3"]
    for name in single:
        one, two = np.array(read_loss_curve(single[name])), np.array(read_loss_curve(ddp[name]))
        assert len(one) == len(two) == 60
        relative = np.abs(one - two) / one
        assert relative[0] < 0.05, f"{name}: first step {one[0]:.3f} vs {two[0]:.3f}"
        assert relative.mean() < 0.10, f"{name}: loss curves differ by {relative.mean():.1%} on average"
        last_one, last_two = _history(single[name])[-1]["loss"], _history(ddp[name])[-1]["loss"]
        assert abs(last_one - last_two) / last_one < 0.10, f"{name}: last epoch {last_one} vs {last_two}"
        assert two[-10:].mean() < two[:10].mean() * 0.8, f"{name}: the torchrun loss should fall"
    maps = [[_history(runs[n])[-1]["val_text_map10"] for n in runs] for runs in (single, ddp)]
    assert abs(np.mean(maps[0]) - np.mean(maps[1])) < 0.08, f"final val mAP@10: {maps}"
    assert min(maps[1]) > 0.2, f"the torchrun members should beat chance (~1/7): {maps[1]}"
    _check_served(tmp_path / "ddp" / "bundle")
    _check_resume(catalog, tmp_path / "ddp", ddp)


def _check_served(bundle_dir: Path) -> None:
    import asyncio

    encoder = EnsembleEncoder.load(dataclasses.replace(EMBEDDER_TEST_CFG, bundle=str(bundle_dir)))

    async def embed():
        core = EmbedderCore(encoder, EMBEDDER_TEST_CFG)
        try:
            texts = await core.embed_texts(["a red dress", "black watch"])
            images = await core.embed_images([encode(gradient((60, 80)), "JPEG")])
        finally:
            await core.close()
        return texts, images

    texts, images = asyncio.run(embed())
    assert texts.members == images.members == ("m1", "m2", "m3")
    for vectors in (*texts.vectors, *images.vectors):
        for name, vector in vectors.items():
            assert vector.shape == (32,) and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-3), name


def _check_resume(catalog: Path, root: Path, runs: dict[str, Path]) -> None:
    """A second torchrun build resumes every finished member on both ranks without training again."""
    before = {
        n: (_history(r), load_file(str(root / "bundle" / "members" / n / WEIGHTS_FILE)))
        for n, r in runs.items()
    }
    _torchrun(["-m", "training.build_default", *_build_args(catalog, root), "--force"], timeout=300)
    bundle = load_bundle(root / "bundle")
    for name, (history, weights) in before.items():
        assert _history(runs[name]) == history, f"{name}: resumed, not retrained"
        again = load_file(str(bundle.resolve(bundle.member(name).path) / WEIGHTS_FILE))
        assert all(torch.equal(weights[k], again[k]) for k in weights), f"{name}: weights changed"
