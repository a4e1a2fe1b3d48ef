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


@pytest.mark.parametrize("tune_stages", [0, 1])
def test_head_trains_on_cached_features_and_the_trunk_stays_imagenet(tmp_path: Path, tune_stages: int):
    catalog = write_synthetic_catalog(tmp_path / "catalog", 210, seed=4)
    member = pretrained_member("p0", 0, "clip+supcon+ce", 0, steps=40, pk=(7, 6), tune_stages=tune_stages)
    data = prepare(catalog, geometry_for(member.model_config(), member.preprocess), tmp_path / "cache")
    run = train_member(member, data, tmp_path / "run")
    losses = [h["loss"] for h in run.history]
    assert losses[-1] < losses[0], f"loss should fall: {losses}"
    assert len(list((tmp_path / "cache").glob("features-*.npy"))) == 1, "trunk features cached once"
    reference = create_efficientnet_lite(0, num_classes=0).state_dict()
    trunk = run.model.visual.trunk.state_dict()
    tuned = (
        {k for k in reference if k.startswith(("blocks.6.", "conv_head.", "bn2."))} if tune_stages else set()
    )
    frozen = set(reference) - tuned
    assert all(torch.equal(trunk[k].cpu(), reference[k]) for k in frozen), "the frozen stages are not trained"
    changed = [k for k in tuned if k.endswith("weight") and not torch.equal(trunk[k].cpu(), reference[k])]
    assert bool(changed) == bool(tune_stages), "the tuned stage trains"

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


def test_tuned_trunk_stages_learn_at_a_tenth_of_the_head_rate():
    from training.defaults import _member
    from training.train import TUNED_LR_SCALE, create_model, trainable_parameters

    member = pretrained_member("p0", 0, "clip", 0, tune_stages=1)
    model, _ = create_model(member)
    groups = trainable_parameters(model, member)
    names = {id(p): n for n, p in model.named_parameters()}
    for group in groups:
        trunk = {names[id(p)].startswith("visual.trunk.") for p in group["params"]}
        assert len(trunk) == 1, "a group is all trunk or all head"
        assert group["lr"] == member.lr * (TUNED_LR_SCALE if trunk.pop() else 1.0)
    trained = {names[id(p)] for g in groups for p in g["params"]}
    assert "visual.trunk.blocks.6.0.conv_pw.weight" in trained
    assert "visual.trunk.blocks.5.0.conv_pw.weight" not in trained
    scratch = _member("m1", "test_byobnet", "clip+ce", 1)
    model, _ = create_model(scratch)
    assert all(g["lr"] == scratch.lr for g in trainable_parameters(model, scratch)), (
        "a from-scratch timm tower trains at the full rate"
    )
