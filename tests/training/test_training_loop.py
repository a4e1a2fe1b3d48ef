"""Train tiny members on the synthetic catalog: loss falls, retrieval beats chance, bundles round-trip."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from domain.bundle import load_bundle
from domain.members import load_member
from training import build_default
from training.data.images import geometry_for
from training.data.prepared import prepare
from training.data.synthetic import write_synthetic_catalog
from training.defaults import tiny_config
from training.queries import category_queries, quick_text_map
from training.retrieval import embed_images, embed_texts
from training.train import train_member


def test_loss_falls_resume_and_member_round_trip(tmp_path: Path):
    catalog = write_synthetic_catalog(tmp_path / "catalog", 210, seed=4)
    member = dataclasses.replace(tiny_config(("solo",), steps=40).members[0], epochs=2)
    data = prepare(catalog, geometry_for(member.model_config(), member.preprocess), None)
    run = train_member(member, data, tmp_path / "run")
    losses = [h["loss"] for h in run.history]
    assert losses[1] < losses[0], f"loss should fall: {losses}"
    assert (tmp_path / "run" / "epoch-1" / "open_clip_config.json").exists()
    # the tower trains in channels-last and is handed back in the standard layout (for export)
    assert all(p.is_contiguous() for p in run.model.visual.parameters())
    again = train_member(dataclasses.replace(member, epochs=2), data, tmp_path / "run")
    assert again.history == run.history, "a finished run resumes without training again"
    # the saved member, loaded as the embedder loads it, gives the same vectors
    spec_bundle = load_bundle_for(run, tmp_path)
    loaded = load_member(spec_bundle.members[0], spec_bundle)
    positions = np.arange(16)
    pixels = data.pixels(geometry_for(run.model_cfg, run.preprocess_cfg))
    device = torch.device("cpu")
    assert np.allclose(
        embed_images(run.model, pixels, positions, device),
        embed_images(loaded.model, pixels, positions, device),
        atol=1e-5,
    )
    queries, prompts = category_queries(list(data.catalog.products), "articleType")
    score = quick_text_map(
        embed_texts(run.model, loaded.tokenizer, prompts, device),
        embed_images(run.model, pixels, np.arange(len(data.catalog)), device),
        queries,
    )
    assert score > 0.3, f"text->image mAP@10 {score:.3f} should clearly beat chance (~1/7)"
    texts = ["a red dress", "a photo of Watches"]
    assert np.allclose(
        embed_texts(run.model, loaded.tokenizer, texts, device),
        embed_texts(loaded.model, loaded.tokenizer, texts, device),
        atol=1e-5,
    )


def load_bundle_for(run, tmp_path: Path):
    """A one-member bundle.json pointing at the run's last epoch folder."""
    from domain.bundle import Bundle, MemberSpec, write_bundle

    spec = MemberSpec(name="solo", arch="tiny", dim=32, image_size=32, path=str(run.epoch_dir()))
    write_bundle(Bundle(name="t", version="1", members=(spec,)), tmp_path / "b")
    return load_bundle(tmp_path / "b")


def test_build_default_is_cached(tmp_path: Path):
    catalog = write_synthetic_catalog(tmp_path / "catalog", 140, seed=5)
    cfg = dataclasses.asdict(tiny_config(("m1",), steps=4))
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    args = [
        "--data",
        str(catalog),
        "--out",
        str(tmp_path / "bundle"),
        "--work",
        str(tmp_path / "work"),
        "--cache",
        str(tmp_path / "cache"),
        "--config",
        str(tmp_path / "cfg.json"),
    ]
    assert build_default.main(args) == 0
    version = load_bundle(tmp_path / "bundle").version
    started = time.time()
    assert build_default.main(args) == 0
    assert time.time() - started < 5 and load_bundle(tmp_path / "bundle").version == version


def test_build_default_falls_back_to_synthetic_data(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(build_default, "SYNTHETIC_COUNT", 70)
    folder, synthetic = build_default.resolve_data(tmp_path / "absent", tmp_path / "work")
    assert synthetic and (folder / "styles.csv").exists()
