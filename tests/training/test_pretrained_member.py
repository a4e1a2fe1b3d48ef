"""A pretrained member trains its head on cached frozen-trunk features and serves the same vectors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from domain.bundle import Bundle, MemberSpec
from domain.members import load_member
from domain.pretrained import create_efficientnet_lite
from training.config import config_from_dict
from training.data.images import geometry_for
from training.data.prepared import prepare
from training.data.synthetic import write_synthetic_catalog
from training.defaults import pretrained_member
from training.queries import category_queries, quick_text_map
from training.retrieval import embed_features, embed_images, embed_texts
from training.train import train_member


def test_head_trains_on_cached_features_and_the_trunk_stays_imagenet(tmp_path: Path):
    catalog = write_synthetic_catalog(tmp_path / "catalog", 210, seed=4)
    member = pretrained_member("p0", 0, "clip+supcon+ce", 0, steps=40, pk=(7, 6))
    data = prepare(catalog, geometry_for(member.model_config(), member.preprocess), tmp_path / "cache")
    run = train_member(member, data, tmp_path / "run")
    losses = [h["loss"] for h in run.history]
    assert losses[-1] < losses[0], f"loss should fall: {losses}"
    assert len(list((tmp_path / "cache").glob("features-*.npy"))) == 1, "trunk features cached once"
    reference = create_efficientnet_lite(0, num_classes=0).state_dict()
    trunk = run.model.visual.trunk.state_dict()
    assert all(torch.equal(trunk[k].cpu(), reference[k]) for k in reference), "the trunk is not trained"

    # served as the embedder loads it: the same vectors as training's cached-feature path
    bundle = Bundle(
        name="b",
        version="1",
        members=(MemberSpec(name="p0", arch="lite0", dim=128, image_size=96, path=str(run.epoch_dir())),),
        root=tmp_path,
    )
    loaded = load_member(bundle.members[0], bundle)
    pixels = data.pixels(geometry_for(run.model_cfg, run.preprocess_cfg))
    features = data.trunk_features(run.model.visual, pixels, torch.device("cpu"))
    every = np.arange(len(data.catalog))
    served = embed_images(loaded.model, pixels, every, torch.device("cpu"))
    cached = embed_features(run.model, features, every, torch.device("cpu"))
    assert np.abs(served - cached).max() < 2e-2  # float16 cache rounding only
    queries, prompts = category_queries(list(data.catalog.products), "articleType")
    score = quick_text_map(
        embed_texts(loaded.model, loaded.tokenizer, prompts, torch.device("cpu")), served, queries
    )
    chance = np.mean([r.mean() for r in queries.relevant])
    assert score > 2 * chance, (score, chance)


def test_pretrained_member_needs_the_trunk_normalization():
    member = pretrained_member("p0", 0, "clip", 0)
    bad = dataclasses.asdict(dataclasses.replace(member, preprocess={**member.preprocess, "mean": [0.4] * 3}))
    with pytest.raises(ValueError, match="member p0: a pretrained EfficientNet-Lite trunk needs"):
        config_from_dict({"members": [bad]})
