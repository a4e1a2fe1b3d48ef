"""ENCLIP ensemble: k-means centroids per member, fusion weights learned on validation, admission, bundle.

The bundle is admitted only when its best fused validation score is not below its best member's;
otherwise the best single member alone is written (and the log and eval report say so).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.cluster import MiniBatchKMeans

from domain.bundle import Bundle, FusionSpec, MemberSpec, write_bundle
from domain.colour_channel import channel_dims, member_dim
from domain.members import save_member
from domain.preprocess import input_size
from domain.pretrained_vision import trunk_package
from training.config import TrainConfig
from training.rrf_table import RRFTable
from training.suite import OBJECTIVE_SETS, Suite, objective, score_suite, systems

log = logging.getLogger("vitrine.training.ensemble")
WEIGHTED = "weighted_rrf"
# Val objectives this close are a tie (about the spread over training seeds of one system).
FUSION_TIE = 0.003


def kmeans_centroids(vectors: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """L2-normalized k-means centroids (k is capped at the number of vectors)."""
    if len(vectors) == 0:
        raise ValueError("k-means needs at least one vector")
    k = max(1, min(k, len(vectors)))
    model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=2048).fit(vectors)
    centroids = model.cluster_centers_.astype(np.float32)
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    return centroids / np.where(norms > 0, norms, 1.0)


def assign_clusters(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the most similar (cosine) centroid per vector."""
    return np.argmax(vectors @ centroids.T, axis=1).astype(np.int64)


def coordinate_search(
    members: Sequence[str], grid: Sequence[float], score: Callable[[dict[str, float]], float], passes: int = 2
) -> tuple[dict[str, float], float]:
    """Maximize ``score(weights)`` one member at a time over ``grid`` (ties keep the current weight).

    Starts from 1.0 each; a weight vector of all zeros is never tried.
    """
    weights = dict.fromkeys(members, 1.0)
    best = score(weights)
    for _ in range(passes):
        improved = False
        for member in members:
            for value in grid:
                trial = {**weights, member: float(value)}
                if value == weights[member] or not any(trial.values()):
                    continue
                result = score(trial)
                if result > best + 1e-12:
                    weights, best, improved = trial, result, True
        if not improved:
            break
    return weights, best


@dataclass(frozen=True)
class Selection:
    """What validation decided: weights, method, rerank, admitted members and the report."""

    weights: dict[str, float]
    method: str
    cluster_rerank: bool
    members: tuple[str, ...]
    admitted: bool
    report: dict


def decide_admission(
    table: Mapping[str, float], members: Sequence[str], rule: str = "gain"
) -> tuple[str, str, bool, bool]:
    """(best single, best fused, fused >= best single, admitted) from val objectives by system name.

    ``rule="gain"`` admits the ensemble only when its best fused system scores at least its best
    member; ``"always"`` admits any multi-member ensemble. One member is never "admitted". Within
    ``FUSION_TIE`` of the best fused system, weighted RRF is chosen: the other methods ignore the
    member weights, so calibration could not weight the lexical member in them.
    """
    best_single = max((f"single:{m}" for m in members), key=lambda n: table[n])
    fused = {n: v for n, v in table.items() if not n.startswith("single:")}
    best_fused = max(fused, key=lambda n: fused[n]) if fused else best_single
    if WEIGHTED in fused and fused[WEIGHTED] >= fused[best_fused] - FUSION_TIE:
        best_fused = WEIGHTED  # the one method that carries member weights, the lexical member's included
    gained = len(members) > 1 and bool(fused) and fused[best_fused] >= table[best_single]
    return best_single, best_fused, gained, gained or (len(members) > 1 and rule == "always")


def select_fusion(
    suite: Suite, members: Sequence[str], clusters: Mapping[str, np.ndarray], cfg: TrainConfig
) -> Selection:
    """Learn weights (weighted RRF), score every system on validation and decide admission."""
    image_set = suite.image_set[0]
    tables = [
        RRFTable(qs, members, excluded_self=qs is image_set)
        for qs in suite.query_sets
        if qs.name in OBJECTIVE_SETS and qs.keys and qs.rankings
    ]

    def weighted_score(weights: dict[str, float]) -> float:
        # ``objective`` of weighted RRF, all queries at once in numpy (equal to score_suite's)
        return float(np.mean([t.macro(weights, cfg.rrf_k) for t in tables])) if tables else 0.0

    weights, _ = (
        coordinate_search(members, cfg.weight_grid, weighted_score)
        if len(members) > 1
        else ({members[0]: 1.0}, 0)
    )
    plain = score_suite(suite, systems(members), weights, cfg.rrf_k, clusters)
    reranked = score_suite(suite, systems(members)[len(members) :], weights, cfg.rrf_k, clusters, rerank=True)
    table = {name: objective(s) for name, s in plain.items()} | {
        f"{n}+clusters": objective(s) for n, s in reranked.items()
    }
    best_single, best_fused, gained, admitted = decide_admission(table, members, cfg.admission)
    report = {
        "objective": "mean(text->image articleType macro mAP@10, image->image articleType mAP@10) on val",
        "objective_by_system": table,
        "weights": weights,
        "best_single": best_single,
        "best_fused": best_fused,
        "admitted": admitted,
        "admission": cfg.admission,
        "fused_beats_best_member": gained,
        "val": _summary(plain) | {f"{n}+clusters": v for n, v in _summary(reranked).items()},
    }
    if admitted:
        if not gained:
            log.warning(
                "best fused %s (%.4f) < best member %s (%.4f); shipping every member (admission=always)",
                best_fused,
                table[best_fused],
                best_single,
                table[best_single],
            )
        method, rerank = best_fused.removesuffix("+clusters"), best_fused.endswith("+clusters")
        return Selection(weights, method, rerank, tuple(members), True, report)
    log.warning(
        "ensemble not admitted: best fused %s (%.4f) < best member %s (%.4f); keeping %s alone",
        best_fused,
        table.get(best_fused, 0.0),
        best_single,
        table[best_single],
        best_single,
    )
    only = best_single.split(":", 1)[1]
    return Selection({only: 1.0}, "rrf", False, (only,), False, report)


def _summary(scores: Mapping[str, dict]) -> dict[str, dict[str, float]]:
    return {s: {q: round(v["macro"], 4) for q, v in sets.items()} for s, sets in scores.items()}


def write_ensemble(
    out_dir: Path,
    cfg: TrainConfig,
    runs: Sequence,
    centroids: Mapping[str, np.ndarray],
    selection: Selection,
    split_file: Path,
    extra: Mapping,
) -> Bundle:
    """Write member folders, centroids, eval.json and bundle.json; returns the bundle."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "centroids").mkdir(exist_ok=True)
    specs = []
    for run in runs:
        if run.name not in selection.members:
            continue
        save_member(run.model, run.model_cfg, run.preprocess_cfg, out_dir / "members" / run.name)
        np.save(out_dir / "centroids" / f"{run.name}.npy", centroids[run.name])
        vision = run.model_cfg["vision_cfg"]
        arch = (
            vision.get("timm_model_name")
            or f"vit-w{vision.get('width')}-l{vision.get('layers')}-p{vision.get('patch_size')}"
        )
        text = run.model_cfg.get("text_cfg", {}).get("hf_model_name", "")
        specs.append(
            MemberSpec(
                name=run.name,
                arch=arch,
                dim=member_dim(run.model_cfg),
                image_size=max(input_size(vision["image_size"])),
                path=f"members/{run.name}",
                centroids=f"centroids/{run.name}.npy",
                weight=float(selection.weights.get(run.name, 1.0)),
                text_encoder=f"hf:{text}" if text else "",
                image_trunk=trunk_package(run.model_cfg),
                colour_dims=channel_dims(run.model_cfg),
            )
        )
    report = {**selection.report, "members": {r.name: r.history for r in runs}}
    (out_dir / "eval.json").write_text(json.dumps(report, indent=2))
    context = min(int(r.model_cfg.get("text_cfg", {}).get("context_length", 77)) for r in runs)
    bundle = Bundle(
        name=cfg.name,
        version=time.strftime("%Y%m%d-%H%M%S"),
        members=tuple(specs),
        fusion=FusionSpec(selection.method, cfg.rrf_k),
        context_length=context,
        eval_report="eval.json",
        split=split_file.name,
        root=out_dir,
        extra={**extra, "cluster_rerank": selection.cluster_rerank, "admitted": selection.admitted},
    )
    write_bundle(bundle, out_dir)
    return bundle
