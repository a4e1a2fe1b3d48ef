"""The tiny real bundle (training.tiny.build_tiny_bundle): layout, a red-dress query, the evaluate CLI.

Building it trains three small members (tens of seconds on idle cores), so the file is marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from domain.bundle import load_bundle
from domain.members import load_member, read_member_config
from training import evaluate
from training.data.images import geometry_for
from training.data.prepared import prepare
from training.retrieval import embed_images, embed_texts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tiny_trained: tuple[Path, Path]) -> Path:
    """The session's three-member tiny bundle (its synthetic catalog sits beside it in ../catalog)."""
    return tiny_trained[0]


def test_tiny_bundle_layout(tiny: Path):
    bundle = load_bundle(tiny)
    assert bundle.member_names == ("m1", "m2", "m3")
    for spec, centroids in bundle.load_centroids().items():
        assert centroids.shape[1] == bundle.member(spec).dim
        assert np.allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-4)
    report = json.loads((tiny / "eval.json").read_text())
    assert report["admission"] == "always" and report["admitted"]
    assert len(bundle.members) == 3
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
        hits = max(
            hits,
            sum(
                products[i].value("articleType") == "Dresses" and products[i].value("baseColour") == "Red"
                for i in top
            ),
        )
    assert hits >= 5, "chance is 10/42 of a red dress in the top 10"


def _configs(bundle_dir: Path, name: str):
    return read_member_config(bundle_dir / "members" / name)


def test_evaluate_cli_on_tiny_bundle(tiny: Path, tmp_path: Path, capsys):
    assert (
        evaluate.main(
            [
                "--bundle",
                str(tiny),
                "--data",
                str(tiny.parent / "catalog"),
                "--out",
                str(tmp_path),
                "--min-items",
                "3",
                "--image-queries",
                "50",
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "eval-test.json").read_text())
    headline = report["fashion"]["text->image articleType"]
    assert {"single:m1", "rrf", "weighted_rrf", "combsum", "borda", "rrf+clusters"} <= set(headline)
    assert max(v["macro"] for v in headline.values()) > 0.3, "well above chance (1/7)"
    image = report["fashion"]["image->image articleType"]
    fusion = report["bundle"]["fusion"]
    expanded = image[f"{fusion}+expansion"]  # the image queries as search expands them
    assert expanded["macro"] > 0.3 and expanded["per_query"].keys() == image[fusion]["per_query"].keys()
    assert "+expansion" not in "".join(headline), "text queries are never expanded"
    assert (tmp_path / "eval-test.png").stat().st_size > 1000
    assert "text->image articleType" in capsys.readouterr().out
