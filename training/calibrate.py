"""Add the lexical member and relevance calibration to a bundle, fitted on its validation split.

    python -m training.calibrate --bundle data/bundles/default --data ../shared/data/fashion-product-images

Steps, all on the bundle's val split: every member ranks the val queries (category prompts,
shopper, brand and out-of-catalog queries, image queries) as served; BM25 over the val items
gives the lexical member's rankings; the lexical weight is the one with the best brand P@10 that
keeps category and shopper mAP@10 (``training.calibration.choose_lexical_weight``); the default
fusion is the build's method or weighted RRF, whichever scores the build's val objective better
with the lexical member in (``training.served_fusion``); a logistic
regression maps each first-page pair's evidence to P(relevant); the no-good-match threshold best
separates out-of-catalog pages from in-catalog ones. ``bundle.json`` gains ``lexical`` and
``calibration`` (written atomically), ``calibration.json`` the val report. A bundle built without
a catalog on disk is calibrated on the synthetic catalog it was trained on.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from domain.bundle import Bundle, load_bundle, write_bundle
from domain.catalog import load_fashion
from domain.fusion import parse_fusion
from domain.lexical import LEXICAL_MEMBER, ensemble_members, ensemble_weights
from domain.query_vectors import EXPANSION_NEIGHBOURS
from training.calibration import (
    CATEGORY_SETS,
    calibration_report,
    choose_threshold,
    collect_pairs,
    fit_calibration,
    page_maxima,
    probabilities,
)
from training.evaluate import load_views, split_catalog
from training.expansion import served_image_queries
from training.lexical import build_index, document_terms, fitted_spec, rank_lexical
from training.queries import OUT_OF_CATALOG_SET
from training.served_fusion import choose_served_fusion
from training.suite import Suite, make_suite, rank_member

log = logging.getLogger("vitrine.training.calibrate")
CALIBRATION_REPORT = "calibration.json"
IMAGE_QUERIES = 300  # image pairs in the fit (text pairs are what the threshold is about)


def ranked_suite(bundle: Bundle, catalog, side: str, device: torch.device, depth: int = 100) -> Suite:
    """A suite over one split side's items, ranked by every dense member (not yet by lexical)."""
    suite = make_suite(
        catalog.products, np.arange(len(catalog)), image_queries_max=IMAGE_QUERIES, depth=depth, side=side
    )
    for view in load_views(bundle, catalog, device):
        rank_member(suite, view, device)
    return suite


def fuser(bundle: Bundle):
    """The bundle's default fusion over the ensemble (lexical included) as ``lists -> fused``."""
    members = ensemble_members(bundle)
    method = parse_fusion(
        bundle.fusion.method, members, k=bundle.fusion.rrf_k, weights=ensemble_weights(bundle)
    )
    return lambda lists: method.fuse(lists, depth=100)


def calibrate(bundle: Bundle, suite: Suite, products) -> tuple[Bundle, dict]:
    """The bundle with a lexical member and a calibration fitted on ``suite`` (val), and the report."""
    spec = fitted_spec(products)
    rank_lexical(suite.ranked_text_sets, build_index(products, spec), suite.depth)
    suite.documents = document_terms([products[i] for i in suite.gallery], spec)
    method, weight, fusion_report = choose_served_fusion(
        suite, bundle.fusion.method, bundle.weights(), bundle.fusion.rrf_k
    )
    spec = replace(spec, weight=weight)
    bundle = replace(
        bundle,
        fusion=replace(bundle.fusion, method=method),
        extra={**bundle.extra, "lexical": spec.to_json()},
    )
    # image queries as search serves them (expanded; services/search/expansion.py)
    pairs = collect_pairs(served_image_queries(suite, bundle), fuser(bundle), bundle.member_names)
    calibration = fit_calibration(pairs, bundle.member_names)
    probs = probabilities(calibration, pairs)
    in_catalog = page_maxima(pairs, probs, CATEGORY_SETS)
    out_of_catalog = page_maxima(pairs, probs, (OUT_OF_CATALOG_SET,))
    calibration = replace(calibration, threshold=choose_threshold(in_catalog, out_of_catalog))
    report = {
        "split": "val",
        "fusion": method,
        "fusion_search": {
            m: {"objective": r["objective"], "lexical_weight": r["lexical_weight"]}
            for m, r in fusion_report.items()
        },
        "lexical_weight": weight,
        "lexical_weight_search": fusion_report[method]["lexical_weight_search"],
        "image_expansion": EXPANSION_NEIGHBOURS,
        **calibration_report(calibration, pairs),
    }
    bundle = replace(bundle, extra={**bundle.extra, "calibration": calibration.to_json()})
    return bundle, report


def calibrate_bundle(bundle_dir: Path, data: Path, device: torch.device) -> dict:
    """Fit on the bundle's val split, write bundle.json and calibration.json; returns the report."""
    bundle = load_bundle(bundle_dir)
    catalog = split_catalog(bundle, load_fashion(data), "val")
    suite = ranked_suite(bundle, catalog, "val", device)
    bundle, report = calibrate(bundle, suite, catalog.products)
    write_bundle(bundle, bundle_dir)
    (bundle_dir / CALIBRATION_REPORT).write_text(json.dumps(report, indent=2))
    log.info(
        "calibrated %s: fusion %s (val objective with the lexical member: %s), lexical weight %s, "
        "threshold %.3f, val ECE %.4f, no_good_match %s",
        bundle_dir,
        report["fusion"],
        {m: round(r["objective"], 4) for m, r in report["fusion_search"].items()},
        report["lexical_weight"],
        report["threshold"],
        report["ece"],
        {k: round(v, 3) for k, v in report["no_good_match"].items() if v is not None},
    )
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=Path("data/bundles/default"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fashion-product-images"))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from training.train import select_device

    data = args.data
    if not (data / "styles.csv").exists():
        trained_on = Path(load_bundle(args.bundle).extra.get("data_path", ""))
        if not (trained_on / "styles.csv").exists():
            parser.error(f"no catalog at {data} (styles.csv) nor at the bundle's data_path")
        data = trained_on
    calibrate_bundle(args.bundle, data, select_device(args.device))
    return 0


__all__ = ["LEXICAL_MEMBER", "calibrate", "calibrate_bundle", "fuser", "ranked_suite"]

if __name__ == "__main__":
    sys.exit(main())
