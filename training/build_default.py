"""``make train``: build the offline default bundle into data/bundles/default, cached by fingerprint.

A rerun with the same config and data returns at once. When the catalog folder is absent, a synthetic
catalog is generated (and the log says so) so the pipeline still runs end to end.

Started by ``torchrun`` it trains data-parallel across the processes (and nodes); rank 0 decides
whether the bundle is up to date, writes the synthetic catalog, the checkpoints, logs and the bundle:

    torchrun --standalone --nproc_per_node 4 -m training.build_default --data DIR --config FILE
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

from domain.bundle import BundleError, load_bundle
from training import distributed
from training.config import TrainConfig, load_config
from training.data.prepared import data_fingerprint
from training.data.synthetic import write_synthetic_catalog
from training.defaults import default_config

log = logging.getLogger("vitrine.training")
SYNTHETIC_COUNT = 2100


def bundle_fingerprint(cfg: TrainConfig, data_folder: Path) -> str:
    """Hash of the training config and the data listing."""
    return hashlib.sha256(f"{cfg.fingerprint()}|{data_fingerprint(data_folder)}".encode()).hexdigest()[:16]


def checkpoint_key(cfg: TrainConfig, data_folder: Path) -> str:
    """Folder (under ``--work``) of the members' checkpoints: a hash of the config's training part
    and the data, so a change to fusion, calibration or the colour channel reuses trained members."""
    basis = f"{cfg.training_fingerprint()}|{data_fingerprint(data_folder)}"
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def cached_bundle(out_dir: Path, fingerprint: str) -> bool:
    """True when ``out_dir`` holds a bundle built from this exact fingerprint."""
    try:
        return load_bundle(out_dir).extra.get("fingerprint") == fingerprint
    except BundleError:
        return False


def resolve_data(folder: Path, work: Path) -> tuple[Path, bool]:
    """The catalog folder to train on, and whether it is synthetic (generated when ``folder`` is absent)."""
    if (folder / "styles.csv").exists():
        return folder, False
    synthetic = work / "synthetic-catalog"
    if not (synthetic / "styles.csv").exists():
        write_synthetic_catalog(synthetic, SYNTHETIC_COUNT)
    log.warning("no catalog at %s: training on a generated synthetic catalog at %s", folder, synthetic)
    return synthetic, True


def make_parser() -> argparse.ArgumentParser:
    """The command line's arguments."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fashion-product-images"))
    parser.add_argument("--out", type=Path, default=Path("data/bundles/default"))
    parser.add_argument(
        "--work", type=Path, default=Path("data/work"), help="checkpoints per member and epoch"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path("data/cache"), help="decoded pixels and text features"
    )
    parser.add_argument("--config", type=Path, help="JSON training config (default: the built-in one)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the bundle is up to date")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    args = make_parser().parse_args(argv)
    cfg = load_config(args.config) if args.config else default_config()
    distributed.init(cfg.device)
    try:
        return _build(args, cfg)
    finally:
        distributed.shutdown()


def _build(args: argparse.Namespace, cfg: TrainConfig) -> int:
    level = logging.INFO if distributed.is_main() else logging.WARNING  # rank 0 alone logs progress
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from training.build import build_bundle  # heavy imports after argument parsing

    with distributed.main_first():
        data, synthetic = resolve_data(args.data, args.work)
    fingerprint = bundle_fingerprint(cfg, data)
    up_to_date = distributed.broadcast_object(
        not args.force and cached_bundle(args.out, fingerprint) if distributed.is_main() else None
    )
    if up_to_date:
        log.info("bundle at %s is up to date (fingerprint %s); nothing to do", args.out, fingerprint)
        return 0
    started = time.time()
    bundle = build_bundle(
        cfg,
        data,
        args.out,
        args.work / checkpoint_key(cfg, data),
        args.cache,
        extra={"fingerprint": fingerprint, "synthetic_data": synthetic, "data_path": str(data)},
    )
    if bundle is None:  # not rank 0: rank 0 writes the bundle
        return 0
    from training.calibrate import calibrate_bundle  # the lexical member and relevance, fitted on val
    from training.train import select_device

    calibration = calibrate_bundle(args.out, data, select_device(cfg.device))
    report = json.loads((args.out / "eval.json").read_text())
    log.info(
        "done in %.0f s: members %s, fusion %s, admitted %s",
        time.time() - started,
        list(bundle.member_names),
        calibration["fusion"],  # as served: calibration decides it with the lexical member in
        report["admitted"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
