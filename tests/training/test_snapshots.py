"""ENCLIP snapshot members: a member taken from another member's run at an earlier epoch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from domain.bundle import Bundle, MemberSpec, load_bundle, write_bundle
from domain.members import load_member
from training.config import MemberConfig, TrainConfig
from training.data.images import geometry_for
from training.data.prepared import prepare
from training.data.synthetic import write_synthetic_catalog
from training.defaults import tiny_config
from training.retrieval import embed_images
from training.train import snapshot_member, train_member


def _vectors_of_folder(folder: Path, tmp_path: Path, pixels) -> np.ndarray:
    spec = MemberSpec(name="x", arch="tiny", dim=32, image_size=32, path=str(folder))
    write_bundle(Bundle(name="t", version="1", members=(spec,)), tmp_path / "b")
    loaded = load_member(spec, load_bundle(tmp_path / "b"))
    return embed_images(loaded.model, pixels, np.arange(12), torch.device("cpu"))


def test_snapshot_member_is_the_earlier_epoch(tmp_path: Path):
    catalog = write_synthetic_catalog(tmp_path / "catalog", 84, seed=6)
    base = dataclasses.replace(tiny_config(("solo",), steps=8).members[0], epochs=2)
    data = prepare(catalog, geometry_for(base.model_config(), base.preprocess), None)
    run = train_member(base, data, tmp_path / "run")
    snap = snapshot_member(MemberConfig(name="solo-e1", snapshot_of="solo", snapshot_epoch=1), base, run)
    pixels = data.pixels(geometry_for(snap.model_cfg, snap.preprocess_cfg))
    ours = embed_images(snap.model, pixels, np.arange(12), torch.device("cpu"))
    assert np.allclose(ours, _vectors_of_folder(run.epoch_dir(1), tmp_path, pixels), atol=1e-5)
    final = embed_images(run.model, pixels, np.arange(12), torch.device("cpu"))
    assert not np.allclose(ours, final, atol=1e-3), "epoch 1 and epoch 2 should differ"
    assert [h["epoch"] for h in snap.history] == [1]


def test_snapshot_config_is_checked():
    base = tiny_config(("m1",), steps=4).members[0]
    with pytest.raises(ValueError, match="not a trained member"):
        TrainConfig(members=(base, MemberConfig(name="s", snapshot_of="nope", snapshot_epoch=1))).validate()
    with pytest.raises(ValueError, match="snapshot_epoch 9"):
        TrainConfig(members=(base, MemberConfig(name="s", snapshot_of="m1", snapshot_epoch=9))).validate()
    with pytest.raises(ValueError, match="snapshot_epoch must be >= 1"):
        MemberConfig(name="s", snapshot_of="m1").validate()
    TrainConfig(members=(base, MemberConfig(name="s", snapshot_of="m1", snapshot_epoch=1))).validate()
