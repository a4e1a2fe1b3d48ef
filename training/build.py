"""Build an ensemble bundle from a catalog folder: train members, cluster, learn fusion, admit, write.

Under ``torchrun`` every rank trains every member (data parallel); rank 0 alone then computes the
k-means centroids, selects the fusion and writes the bundle.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from domain.bundle import Bundle
from domain.colour_channel import channel_dims
from domain.members import make_tokenizer
from domain.pretrained_vision import use_onnx_runtime
from training import distributed
from training.colour_channel import ColourFit, add_colour_channels
from training.config import TrainConfig
from training.data.images import geometry_for
from training.data.prepared import TrainingData, prepare
from training.ensemble import assign_clusters, kmeans_centroids, select_fusion, write_ensemble
from training.retrieval import embed_images
from training.suite import MemberView, make_suite, rank_member
from training.train import MemberRun, snapshot_member, train_member

log = logging.getLogger("vitrine.training.build")
KMEANS_SAMPLE = 8000


def member_view(run: MemberRun, data: TrainingData) -> MemberView:
    """The evaluation view of a trained member."""
    return MemberView(
        run.name,
        run.model,
        make_tokenizer(run.model_cfg),
        data.pixels(geometry_for(run.model_cfg, run.preprocess_cfg)),
        channel_dims(run.model_cfg),
    )


def member_centroids(
    view: MemberView, data: TrainingData, k: int, device: torch.device, seed: int = 0
) -> np.ndarray:
    """k-means centroids over (a sample of) the member's training-image embeddings."""
    train = data.positions("train")
    if len(train) > KMEANS_SAMPLE:
        train = np.sort(np.random.default_rng(seed).choice(train, KMEANS_SAMPLE, replace=False))
    return kmeans_centroids(embed_images(view.model, view.pixels, train, device), k, seed)


def build_bundle(
    cfg: TrainConfig,
    data_folder: Path,
    out_dir: Path,
    work_dir: Path,
    cache_dir: Path | None,
    extra: dict | None = None,
) -> Bundle | None:
    """Train every member (resuming from ``work_dir``), select the fusion on val and write the bundle.

    Returns the bundle on rank 0 and None on the other ranks of a torchrun world.
    """
    cfg.validate()
    device = distributed.init(cfg.device)
    started = time.time()
    first = next(m for m in cfg.members if not m.snapshot_of)
    with distributed.main_first():  # rank 0 decodes into the cache, the others read it
        data = prepare(
            data_folder,
            geometry_for(first.model_config(), first.preprocess),
            cache_dir,
            cfg.split_seed,
            cfg.split_fractions,
            cfg.max_items,
            cfg.name_captions,
        )
    by_name = {m.name: m for m in cfg.members}
    trained = {
        m.name: train_member(m, data, work_dir / m.name, device, cfg.precision)
        for m in cfg.members
        if not m.snapshot_of
    }
    if not distributed.is_main():
        return None
    runs = [
        snapshot_member(m, by_name[m.snapshot_of], trained[m.snapshot_of])
        if m.snapshot_of
        else trained[m.name]
        for m in cfg.members
    ]
    if cfg.colour_channel is not None:
        runs = add_colour_channels(runs, data, ColourFit.from_dict(cfg.colour_channel))
    trained = time.time()
    if device.type == "cpu":  # validation and k-means embed images with the trunks on ONNX Runtime
        use_onnx_runtime([run.model for run in runs], torch.get_num_threads())
    suite = make_suite(
        data.catalog.products,
        data.positions("val"),
        min_items=cfg.min_category_items,
        image_queries_max=500,
        depth=cfg.fusion_depth,
    )
    centroids, clusters = {}, {}
    for run in runs:
        view = member_view(run, data)
        gallery = rank_member(suite, view, device)
        centroids[run.name] = member_centroids(view, data, cfg.kmeans_k, device)
        clusters[run.name] = assign_clusters(gallery, centroids[run.name])
    selection = select_fusion(suite, [r.name for r in runs], clusters, cfg)
    staging = out_dir.with_name(f".{out_dir.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    split_file = data.split.write(staging / "split.json")
    timing = {"train_s": round(trained - started, 1), "total_s": round(time.time() - started, 1)}
    skipped = dict(data.catalog.report.skipped)
    bundle = write_ensemble(
        staging,
        cfg,
        runs,
        centroids,
        selection,
        split_file,
        {**(extra or {}), "timing": timing, "data": {"items": len(data.catalog), "skipped": skipped}},
    )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    log.info(
        "bundle %s written to %s (%s members, fusion %s, %.0f s)",
        bundle.version,
        out_dir,
        len(bundle.members),
        bundle.fusion.method,
        time.time() - started,
    )
    return bundle
