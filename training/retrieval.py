"""Embedding, per-member top-k rankings and scoring of single members and fused rankings.

Fusion itself is ``domain.fusion`` / ``domain.rerank`` (the code the search
service runs), applied per query to the members' top ``depth`` hits, so offline numbers measure
exactly what is served.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from domain.fusion import METHODS, FusedHit, RankedHit, parse_fusion
from domain.lexical import LEXICAL_MEMBER
from domain.rerank import cluster_rerank
from training.data.images import Pixels
from training.metrics import (
    average_precision,
    average_precision_at_k,
    macro_micro,
    precision_at_k,
    recall_at_k,
)

FUSED_METHODS = METHODS
NO_LEXICAL = " -lexical"  # system name suffix: the same fusion over the dense members only


@torch.inference_mode()
def embed_images(
    model: torch.nn.Module, pixels: Pixels, positions: Sequence[int], device: torch.device, batch: int = 512
) -> np.ndarray:
    """L2-normalized image features (float32) of the given cache rows."""
    out = []
    positions = np.asarray(positions)
    for start in range(0, len(positions), batch):
        images = pixels.batch(positions[start : start + batch]).to(device)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            out.append(F.normalize(model.encode_image(images).float(), dim=-1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 1), np.float32)


@torch.inference_mode()
def embed_features(
    model: torch.nn.Module, features: np.ndarray, positions: Sequence[int], device: torch.device
) -> np.ndarray:
    """L2-normalized image vectors from cached frozen-trunk features (the head alone; same vectors
    as ``embed_images`` up to the cache's float16 rounding)."""
    rows = np.asarray(features[np.asarray(positions)], dtype=np.float32)
    vectors = model.visual.project(torch.from_numpy(rows).to(device))
    return F.normalize(vectors.float(), dim=-1).cpu().numpy()


@torch.inference_mode()
def embed_texts(model: torch.nn.Module, tokenizer, texts: Sequence[str], device: torch.device) -> np.ndarray:
    """L2-normalized text features (float32)."""
    out = []
    for start in range(0, len(texts), 256):
        tokens = tokenizer(list(texts[start : start + 256])).to(device)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            out.append(F.normalize(model.encode_text(tokens).float(), dim=-1).cpu())
    return torch.cat(out).numpy()


def top_k(queries: np.ndarray, gallery: np.ndarray, depth: int, exclude: np.ndarray | None = None):
    """(indices, scores) of the ``depth`` most similar gallery rows per query; ``exclude[q]`` is left out."""
    scores = queries @ gallery.T
    if exclude is not None:
        scores[np.arange(len(queries)), exclude] = -np.inf
    depth = min(depth, gallery.shape[0] - (exclude is not None))
    part = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)


@dataclass
class QuerySet:
    """Queries with relevance over a gallery; ``rankings[member] = (indices, scores)`` per query."""

    name: str
    keys: list[str]
    relevant: list[np.ndarray]  # per query: bool mask over the gallery
    rankings: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # per (cluster map, members ranked): every query's ranked lists, built once (see query_lists)
    _lists: dict[tuple, tuple[object, list]] = field(default_factory=dict, repr=False, compare=False)

    def totals(self, excluded_self: bool = False) -> list[int]:
        """Relevant items per query (minus the query itself for image queries)."""
        return [int(r.sum()) - int(excluded_self) for r in self.relevant]


def ranked_lists(
    query_set: QuerySet, q: int, clusters: Mapping[str, np.ndarray] | None
) -> dict[str, list[RankedHit]]:
    """The members' ranked lists for query ``q`` in the shape fusion.py takes (ids = gallery rows)."""
    lists = {}
    for member, (indices, scores) in query_set.rankings.items():
        assigned = clusters.get(member) if clusters else None
        lists[member] = [
            RankedHit(str(int(i)), float(s), int(assigned[i]) if assigned is not None else -1)
            for i, s in zip(indices[q], scores[q], strict=True)
        ]
    return lists


def query_lists(
    query_set: QuerySet, clusters: Mapping[str, np.ndarray] | None
) -> list[dict[str, list[RankedHit]]]:
    """``ranked_lists`` of every query, built once per query set, cluster map and set of ranked
    members, then shared by every system scored on the set (a weight search scores dozens)."""
    key = (id(clusters) if clusters is not None else 0, tuple(query_set.rankings))
    cached = query_set._lists.get(key)
    if cached is None or cached[0] is not clusters:
        cached = (clusters, [ranked_lists(query_set, q, clusters) for q in range(len(query_set.keys))])
        query_set._lists[key] = cached
    return cached[1]


def fusion_function(method: str, weights: Mapping[str, float], rrf_k: float, depth: int) -> Callable:
    """``lists -> fused hits`` for a method of ``FUSED_METHODS`` or ``single:<member>`` (members: ``weights``' keys).

    The method is parsed and applied by :func:`domain.fusion.parse_fusion`, as search does. A name
    ending in :data:`NO_LEXICAL` fuses the lists without the lexical member's.
    """
    if method.endswith(NO_LEXICAL):
        inner = fusion_function(method.removesuffix(NO_LEXICAL), weights, rrf_k, depth)
        return lambda lists: inner({m: hits for m, hits in lists.items() if m != LEXICAL_MEMBER})
    chosen = parse_fusion(method, list(weights), k=rrf_k, weights=weights)
    return lambda lists: chosen.fuse(lists, depth)


def fused_rows(hits: Sequence[FusedHit], limit: int) -> np.ndarray:
    """Gallery rows of the first ``limit`` fused hits."""
    return np.array([int(h.id) for h in hits[:limit]], dtype=np.int64)


def score_system(
    query_set: QuerySet,
    fuse: Callable,
    clusters: Mapping[str, np.ndarray] | None = None,
    rerank: bool = False,
    k: int = 10,
    excluded_self: bool = False,
) -> dict[str, float | dict[str, float]]:
    """AP@k per query, macro and micro, for one fused (or single) system; also Recall@1/5/10 and mAP."""
    totals = query_set.totals(excluded_self)
    per_query: dict[str, float] = {}
    recalls = {1: [], 5: [], 10: []}
    full_ap, precisions = [], []
    for q, (key, lists) in enumerate(zip(query_set.keys, query_lists(query_set, clusters), strict=True)):
        hits = fuse(lists)
        if rerank:
            hits = cluster_rerank(hits, lists)
        relevant = query_set.relevant[q][fused_rows(hits, len(hits))]
        per_query[key] = average_precision_at_k(relevant, totals[q], k)
        full_ap.append(average_precision(relevant, totals[q]))
        precisions.append(precision_at_k(relevant, totals[q], k))
        for r in recalls:
            recalls[r].append(recall_at_k(relevant, r))
    macro, micro = macro_micro(per_query, dict(zip(query_set.keys, totals, strict=True)))
    return {
        "macro": macro,
        "micro": micro,
        "per_query": per_query,
        **{f"recall@{r}": float(np.mean(v)) if v else 0.0 for r, v in recalls.items()},
        "map": float(np.mean(full_ap)) if full_ap else 0.0,
        f"p@{k}": float(np.mean(precisions)) if precisions else 0.0,
    }
