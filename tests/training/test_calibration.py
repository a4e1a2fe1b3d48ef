"""Offline BM25 scores as the store does; calibration fitting, threshold and ECE; the calibrate CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from domain.bundle import load_bundle
from domain.calibration import load_calibration
from domain.catalog import Product
from domain.lexical import LEXICAL_MEMBER, LexicalSpec, lexical_spec, query_vector
from services.common.config import StoreConfig
from services.storage.factory import open_store
from services.storage.port import MemberQuery, Point
from training import calibrate, evaluate
from training.calibration import Pairs, choose_threshold, expected_calibration_error, fit_calibration
from training.lexical import build_index

NAMES = ["Puma Men Black Tshirt", "Nike Women Shoes", "Puma Running Shoes", "Titan Watch", "Nike Tshirt Blue"]
TYPES = ["Tshirts", "Sports Shoes", "Sports Shoes", "Watches", "Tshirts"]


def products() -> list[Product]:
    return [
        Product(str(i), text=n, attributes={"gender": "Men", "articleType": t})
        for i, (n, t) in enumerate(zip(NAMES, TYPES, strict=True))
    ]


def test_offline_bm25_equals_the_store(tmp_path):
    spec = LexicalSpec(avg_len=6.0)
    index = build_index(products(), spec)
    store = open_store(StoreConfig(backend="edge", path=str(tmp_path / "edge")))
    store.ensure_collection("c", {"d": 2}, sparse_vectors=[LEXICAL_MEMBER])
    store.upsert(
        "c",
        [
            Point(p.id, {"d": [1.0, 0.0], LEXICAL_MEMBER: spec.document(p.text, p.attributes)}, {})
            for p in products()
        ],
    )
    for text in ["puma tshirts", "sports shoes", "watch", "garden hose"]:
        rows, scores = index.rank([text], depth=10)
        hits = store.query("c", [MemberQuery(LEXICAL_MEMBER, query_vector(text), 10)])[LEXICAL_MEMBER]
        offline = dict(zip((str(r) for r in rows[0]), scores[0], strict=True))
        assert {h.id for h in hits} == set(offline)  # exact ties come in either order
        np.testing.assert_allclose([h.score for h in hits], [offline[h.id] for h in hits], rtol=1e-4)
    store.close()


def test_fit_threshold_and_ece():
    rng = np.random.default_rng(0)
    evidence = rng.uniform(0, 1, 2000)
    labels = (rng.uniform(0, 1, 2000) < evidence).astype(int)  # P(relevant) = evidence
    rows = [[e, 1.0, None, None] + [0.0] * 10 for e in evidence]  # m1 only; m2 not queried
    calibration = fit_calibration(Pairs(rows, labels.tolist(), []), ("m1", "m2"))
    probs = np.array([calibration.probability(r) for r in rows])
    assert expected_calibration_error(probs, labels) < 0.05
    assert probs[np.argmax(evidence)] > 0.8 > 0.2 > probs[np.argmin(evidence)]
    assert expected_calibration_error(np.full(100, 0.9), np.zeros(100)) == pytest.approx(0.9)
    threshold = choose_threshold(np.array([0.7, 0.8, 0.9]), np.array([0.1, 0.2, 0.75]))
    assert 0.2 < threshold <= 0.7
    with pytest.raises(ValueError, match="relevant and irrelevant"):
        fit_calibration(Pairs(rows[:5], [0] * 5, []), ("m1", "m2"))


def test_calibrate_cli_adds_lexical_and_calibration_then_evaluate_reports_them(tiny_trained, tmp_path: Path):
    bundle_dir, catalog = tiny_trained
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    assert calibrate.main(["--bundle", str(copy), "--data", str(catalog)]) == 0
    bundle = load_bundle(copy)
    assert lexical_spec(bundle.extra).weight > 0
    calibration = load_calibration(bundle.extra)
    assert calibration is not None and 0.0 <= calibration.threshold <= 1.0
    assert json.loads((copy / "calibration.json").read_text())["split"] == "val"
    out = tmp_path / "eval"
    args = ["--bundle", str(copy), "--data", str(catalog), "--out", str(out), "--min-items", "3", "--quiet"]
    assert evaluate.main([*args, "--image-queries", "50"]) == 0
    report = json.loads((out / "eval-test.json").read_text())
    headline = report["fashion"]["text->image articleType"]
    assert {"single:lexical", "weighted_rrf", "weighted_rrf -lexical"} <= set(headline)
    assert 0.0 <= report["calibration"]["ece"] <= 1.0
    assert (out / "reliability-test.png").stat().st_size > 1000
