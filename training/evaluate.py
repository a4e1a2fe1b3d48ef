"""``make evaluate``: score a bundle on a split of the catalog (and on In-shop when given).

Members are loaded exactly as the embedder loads them (``domain.members.load_member``)
and fused with the search service's own fusion code. Reports text->image mAP@10 per category
(articleType, subCategory, masterCategory; macro over categories with >= 10 items, and micro),
image->image mAP@10, Recall@1/5/10 and mAP, for every member and fusion, with and without
cluster-aware re-ranking. Writes ``eval-<split>.json`` and ``eval-<split>.png``.

    python -m training.evaluate --bundle data/bundles/default --data ../shared/data/fashion-product-images
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from domain.bundle import Bundle, load_bundle
from domain.calibration import load_calibration
from domain.catalog import Catalog, load_fashion, load_inshop
from domain.lexical import ensemble_members, ensemble_weights, lexical_spec
from domain.members import load_member
from domain.preprocess import split_transform
from domain.pretrained_vision import use_onnx_runtime
from domain.query_vectors import EXPANSION_NEIGHBOURS
from training.calibration import calibration_report, collect_pairs, probabilities, reliability_plot
from training.data.images import decode_catalog
from training.data.split import SPLITS, make_split, read_split
from training.ensemble import assign_clusters
from training.expansion import EXPANSION, score_expansion, served_image_queries
from training.lexical import build_index, document_terms, rank_lexical
from training.queries import instance_queries
from training.report import plot_report, print_report
from training.retrieval import FUSED_METHODS, NO_LEXICAL, embed_images, top_k
from training.suite import MemberView, Suite, make_suite, rank_member, score_suite, systems
from training.train import select_device

log = logging.getLogger("vitrine.training.evaluate")


def load_views(bundle: Bundle, catalog: Catalog, device: torch.device) -> list[MemberView]:
    """Every bundle member loaded as served, with the catalog decoded by its own eval transform."""
    views, decoded = [], {}
    for spec in bundle.members:
        member = load_member(spec, bundle, device)
        transform = split_transform(member.preprocess)
        if transform is None:
            raise ValueError(f"member {spec.name}: its preprocess must end with ToTensor + Normalize")
        if transform.key not in decoded:
            decoded[transform.key] = decode_catalog(catalog, transform)
        views.append(
            MemberView(spec.name, member.model, member.tokenizer, decoded[transform.key], spec.colour_dims)
        )
    if device.type == "cpu":  # pretrained trunks on ONNX Runtime, one session per trunk, as served
        use_onnx_runtime([view.model for view in views], torch.get_num_threads())
    return views


def split_catalog(bundle: Bundle, catalog: Catalog, side: str) -> Catalog:
    """The products on one side of the bundle's split (or a fresh seed-0 split when it has none)."""
    split_file = bundle.resolve(bundle.split) if bundle.split else None
    split = read_split(split_file) if split_file and split_file.exists() else make_split(catalog)
    return catalog.subset(split.positions(catalog, side))


def evaluate_fashion(bundle: Bundle, catalog: Catalog, device: torch.device, args) -> tuple[dict, Suite]:
    """All systems on the text->image and image->image sets of one split side (and the suite)."""
    views = load_views(bundle, catalog, device)
    suite = make_suite(
        catalog.products,
        np.arange(len(catalog)),
        min_items=args.min_items,
        image_queries_max=args.image_queries,
        depth=args.depth,
        side=args.split,
    )
    for view in views:
        rank_member(suite, view, device)
    spec = lexical_spec(bundle.extra)
    if spec is not None:
        rank_lexical(suite.ranked_text_sets, build_index(catalog.products, spec), suite.depth)
        suite.documents = document_terms([catalog.products[i] for i in suite.gallery], spec)
    return score_all(bundle, suite, args.expansion), suite


def score_all(bundle: Bundle, suite: Suite, expansion: int = EXPANSION_NEIGHBOURS) -> dict:
    """Score singles and fusions (plain and cluster re-ranked) over a suite; with a lexical member
    also each fusion without it (``<method> -lexical``); with ``expansion`` neighbours also the
    bundle's fusion on expanded image queries (``<method>+expansion``, the image set only)."""
    centroids = bundle.load_centroids()
    clusters = {m: assign_clusters(suite.vectors[m], c) for m, c in centroids.items() if m in suite.vectors}
    names = list(ensemble_members(bundle))
    weights = ensemble_weights(bundle)
    fused = list(FUSED_METHODS) if len(names) > 1 else []
    if len(names) > len(bundle.member_names) and len(bundle.member_names) > 1:
        fused += [f"{m}{NO_LEXICAL}" for m in FUSED_METHODS]
    plain = score_suite(suite, systems(names, fused), weights, bundle.fusion.rrf_k, clusters)
    reranked = (
        score_suite(suite, fused[: len(FUSED_METHODS)], weights, bundle.fusion.rrf_k, clusters, rerank=True)
        if clusters
        else {}
    )
    results: dict[str, dict] = {}
    for system, sets in [*plain.items(), *((f"{n}+clusters", s) for n, s in reranked.items())]:
        for set_name, scores in sets.items():
            results.setdefault(set_name, {})[system] = scores
    image_set = suite.image_set[0]
    if expansion > 0 and image_set.rankings:
        scores = score_expansion(suite, bundle, expansion)
        results[image_set.name][f"{bundle.fusion.method}{EXPANSION}"] = scores
    return results


def evaluate_calibration(
    bundle: Bundle, suite: Suite, plot: Path, expansion: int = EXPANSION_NEIGHBOURS
) -> dict | None:
    """ECE and no-good-match rates of the bundle's calibration on the suite's first pages (image
    queries expanded with ``expansion`` neighbours, as served), and the reliability plot; None when
    the bundle has no calibration."""
    calibration = load_calibration(bundle.extra)
    if calibration is None:
        return None
    from training.calibrate import fuser

    pairs = collect_pairs(served_image_queries(suite, bundle, expansion), fuser(bundle), bundle.member_names)
    report = calibration_report(calibration, pairs)
    probs, labels = probabilities(calibration, pairs), np.asarray(pairs.labels, dtype=np.float64)
    reliability_plot(
        probs, labels, plot, f"reliability on {len(labels)} first-page pairs, ECE {report['ece']:.3f}"
    )
    report["plot"] = plot.name
    return report


def evaluate_inshop(bundle: Bundle, folder: Path, device: torch.device, depth: int) -> dict:
    """Recall@1/5/10 and mAP on In-shop query -> gallery (relevant = same item id)."""
    parts = load_inshop(folder)
    queries, gallery = parts["query"], parts["gallery"]
    query_set = instance_queries(list(queries.products), list(gallery.products))
    suite = Suite(np.arange(len(gallery)), [], (query_set, np.zeros(0, np.int64)), depth)
    for qv, gv in zip(load_views(bundle, queries, device), load_views(bundle, gallery, device), strict=True):
        gallery_vectors = embed_images(gv.model, gv.pixels, np.arange(len(gallery)), device)
        suite.vectors[gv.name] = gallery_vectors
        query_vectors = embed_images(qv.model, qv.pixels, np.arange(len(queries)), device)
        query_set.rankings[gv.name] = top_k(query_vectors, gallery_vectors, depth)
    return score_all(bundle, suite)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=Path("data/bundles/default"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fashion-product-images"))
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument(
        "--inshop", type=Path, help="DeepFashion In-shop folder (list_eval_partition.txt + img/)"
    )
    parser.add_argument("--out", type=Path, help="folder for eval-<split>.json/.png (default: the bundle)")
    parser.add_argument(
        "--min-items", type=int, default=10, help="categories with fewer items are not queried"
    )
    parser.add_argument("--image-queries", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=100, help="hits per member fused per query")
    parser.add_argument(
        "--expansion",
        type=int,
        default=EXPANSION_NEIGHBOURS,
        help="also score image queries expanded with this many fused neighbours (0: do not)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quiet", action="store_true", help="write the files; do not print the tables")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bundle = load_bundle(args.bundle)
    device = select_device(args.device)
    report: dict = {
        "bundle": {
            "name": bundle.name,
            "version": bundle.version,
            "fusion": bundle.fusion.method,
            "weights": bundle.weights(),
            "admitted": bundle.extra.get("admitted"),
        }
    }
    if (args.data / "styles.csv").exists():
        catalog = split_catalog(bundle, load_fashion(args.data), args.split)
        report["split"], report["items"] = args.split, len(catalog)
        report["fashion"], suite = evaluate_fashion(bundle, catalog, device, args)
        out = args.out or args.bundle
        out.mkdir(parents=True, exist_ok=True)
        report["calibration"] = evaluate_calibration(
            bundle, suite, out / f"reliability-{args.split}.png", args.expansion
        )
    else:
        log.warning("no catalog at %s; skipping the Fashion Product Images evaluation", args.data)
    if args.inshop:
        report["inshop"] = evaluate_inshop(bundle, args.inshop, device, args.depth)
    out = args.out or args.bundle
    out.mkdir(parents=True, exist_ok=True)
    (out / f"eval-{args.split}.json").write_text(json.dumps(report, indent=2))
    if not args.quiet:
        print_report(report)
    plot_report(report, out / f"eval-{args.split}.png")
    log.info("wrote %s and %s", out / f"eval-{args.split}.json", out / f"eval-{args.split}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
