"""Train tiny members on the synthetic catalog: loss falls, retrieval beats chance, bundles round-trip."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from services.common.bundle import load_bundle
from services.embedder.members import load_member
from training import build_default, evaluate
from training.data.images import geometry_for
from training.data.prepared import prepare
from training.data.synthetic import write_synthetic_catalog
from training.defaults import tiny_config
from training.retrieval import embed_images, embed_texts
from training.tiny import build_tiny_bundle
from training.train import train_member


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-member tiny bundle (its synthetic catalog sits beside it in ../catalog)."""
    return build_tiny_bundle(tmp_path_factory.mktemp("tiny"))


def test_loss_falls_resume_and_member_round_trip(tmp_path: Path):
    catalog = write_synthetic_catalog(tmp_path / "catalog", 210, seed=4)
    member = dataclasses.replace(tiny_config(("solo",), steps=30).members[0], epochs=2)
    data = prepare(catalog, geometry_for(member.model_config(), member.preprocess), None)
    run = train_member(member, data, tmp_path / "run")
    losses = [h["loss"] for h in run.history]
    assert losses[1] < losses[0], f"loss should fall: {losses}"
    assert (tmp_path / "run" / "epoch-1" / "open_clip_config.json").exists()
    again = train_member(dataclasses.replace(member, epochs=2), data, tmp_path / "run")
    assert again.history == run.history, "a finished run resumes without training again"
    # the saved member, loaded as the embedder loads it, gives the same vectors
    spec_bundle = load_bundle_for(run, tmp_path)
    loaded = load_member(spec_bundle.members[0], spec_bundle)
    positions = np.arange(16)
    pixels = data.pixels(geometry_for(run.model_cfg, run.preprocess_cfg))
    device = torch.device("cpu")
    assert np.allclose(embed_images(run.model, pixels, positions, device), embed_images(loaded.model, pixels, positions, device), atol=1e-5)
    texts = ["a red dress", "a photo of Watches"]
    assert np.allclose(embed_texts(run.model, loaded.tokenizer, texts, device), embed_texts(loaded.model, loaded.tokenizer, texts, device), atol=1e-5)


def load_bundle_for(run, tmp_path: Path):
    """A one-member bundle.json pointing at the run's last epoch folder."""
    from services.common.bundle import Bundle, MemberSpec, write_bundle

    spec = MemberSpec(name="solo", arch="tiny", dim=32, image_size=32, path=str(run.epoch_dir()))
    write_bundle(Bundle(name="t", version="1", members=(spec,)), tmp_path / "b")
    return load_bundle(tmp_path / "b")


def test_tiny_bundle_layout(tiny: Path):
    bundle = load_bundle(tiny)
    assert bundle.member_names == ("m1", "m2", "m3") or len(bundle.members) == 1
    for spec, centroids in bundle.load_centroids().items():
        assert centroids.shape[1] == bundle.member(spec).dim
        assert np.allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-4)
    report = json.loads((tiny / "eval.json").read_text())
    assert report["admitted"] == (len(bundle.members) > 1)
    assert set(json.loads((tiny / "split.json").read_text())) >= {"train", "val", "test"}


def test_tiny_bundle_finds_red_dresses(tiny: Path):
    bundle = load_bundle(tiny)
    catalog = tiny.parent / "catalog"
    data = prepare(catalog, geometry_for(*_configs(tiny, bundle.members[0].name)), None)
    device = torch.device("cpu")
    products = data.catalog.products
    hits = 0
    for spec in bundle.members:
        member = load_member(spec, bundle)
        pixels = data.pixels(geometry_for(*_configs(tiny, spec.name)))
        gallery = embed_images(member.model, pixels, np.arange(len(products)), device)
        query = embed_texts(member.model, member.tokenizer, ["a red dress"], device)
        top = np.argsort(-(query @ gallery.T)[0])[:10]
        hits = max(hits, sum(products[i].articleType == "Dresses" and products[i].baseColour == "Red" for i in top))
    assert hits >= 5, "chance is 10/42 of a red dress in the top 10"


def _configs(bundle_dir: Path, name: str):
    from services.embedder.members import read_member_config

    return read_member_config(bundle_dir / "members" / name)


def test_evaluate_cli_on_tiny_bundle(tiny: Path, tmp_path: Path, capsys):
    assert evaluate.main(["--bundle", str(tiny), "--data", str(tiny.parent / "catalog"), "--out", str(tmp_path),
                          "--min-items", "3", "--image-queries", "50"]) == 0
    report = json.loads((tmp_path / "eval-test.json").read_text())
    headline = report["fashion"]["text->image articleType"]
    assert {"single:m1", "rrf", "weighted_rrf", "combsum", "borda", "rrf+clusters"} <= set(headline)
    assert max(v["macro"] for v in headline.values()) > 0.3, "well above chance (1/7)"
    assert (tmp_path / "eval-test.png").stat().st_size > 1000
    assert "text->image articleType" in capsys.readouterr().out


def test_build_default_is_cached(tmp_path: Path):
    catalog = write_synthetic_catalog(tmp_path / "catalog", 140, seed=5)
    cfg = dataclasses.asdict(tiny_config(("m1",), steps=4))
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    args = ["--data", str(catalog), "--out", str(tmp_path / "bundle"), "--work", str(tmp_path / "work"),
            "--cache", str(tmp_path / "cache"), "--config", str(tmp_path / "cfg.json")]
    assert build_default.main(args) == 0
    version = load_bundle(tmp_path / "bundle").version
    started = time.time()
    assert build_default.main(args) == 0
    assert time.time() - started < 5 and load_bundle(tmp_path / "bundle").version == version


def test_build_default_falls_back_to_synthetic_data(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(build_default, "SYNTHETIC_COUNT", 70)
    folder, synthetic = build_default.resolve_data(tmp_path / "absent", tmp_path / "work")
    assert synthetic and (folder / "styles.csv").exists()
