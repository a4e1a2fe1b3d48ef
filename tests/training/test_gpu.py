"""CUDA checks: AMP (bf16 and fp16) training and fp16 serving. Run by bench/gpu.sh on a GPU machine."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from services.embedder.encoder import EnsembleEncoder
from services.embedder.images import decode_image
from tests.support.embedder import EMBEDDER_TEST_CFG
from tests.support.images import encode, gradient
from training.data.images import geometry_for
from training.data.prepared import prepare
from training.data.synthetic import write_synthetic_catalog
from training.defaults import tiny_config
from training.train import train_member

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_amp_training_on_cuda_learns(tmp_path: Path, precision: str):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    catalog = write_synthetic_catalog(tmp_path / "catalog", 210, seed=4)
    member = dataclasses.replace(tiny_config(("solo",), steps=40).members[0], epochs=2)
    data = prepare(catalog, geometry_for(member.model_config(), member.preprocess), None)
    run = train_member(member, data, tmp_path / "run", torch.device("cuda"), precision)
    losses = [h["loss"] for h in run.history]
    assert all(np.isfinite(losses)) and losses[1] < losses[0], f"{precision} loss should fall: {losses}"
    assert all(p.dtype == torch.float32 for p in run.model.parameters()), "master weights stay fp32"
    assert run.history[-1]["val_text_map10"] > 0.2, "well above chance (~1/7)"


def _vectors(bundle: Path, precision: str) -> tuple[list, list]:
    cfg = dataclasses.replace(EMBEDDER_TEST_CFG, bundle=str(bundle), device="cuda", precision=precision)
    encoder = EnsembleEncoder.load(cfg)
    names = encoder.member_names
    texts = [encoder.prepare_text(t, names) for t in ("a red dress", "black leather watch")]
    image = decode_image(encode(gradient((60, 80)), "JPEG"), "x", 10**8, 10**9)
    images = [encoder.prepare_image(image, names)]
    return encoder.encode_texts(texts), encoder.encode_images(images)


def test_fp16_serving_matches_fp32(random_bundle: Path):
    half, full = _vectors(random_bundle, "fp16"), _vectors(random_bundle, "fp32")
    for half_rows, full_rows in zip(half, full, strict=True):
        for h, f in zip(half_rows, full_rows, strict=True):
            for name in f:
                cosine = float(np.dot(h[name], f[name]) / np.linalg.norm(h[name]) / np.linalg.norm(f[name]))
                assert cosine > 0.995, f"{name}: fp16 vs fp32 cosine {cosine:.4f}"
