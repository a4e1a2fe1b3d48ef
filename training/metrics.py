"""Retrieval metrics on ranked relevance: AP@k, mAP, Recall@k, macro/micro averages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def average_precision_at_k(relevant: Sequence[bool] | np.ndarray, total_relevant: int, k: int = 10) -> float:
    """AP@k: mean of precision@i over the relevant positions i <= k, divided by min(total_relevant, k)."""
    if k <= 0:
        raise ValueError(f"k must be > 0, got {k}")
    if total_relevant <= 0:
        return 0.0
    hits = np.asarray(relevant[:k], dtype=bool)
    if not hits.any():
        return 0.0
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].sum() / min(total_relevant, k))


def average_precision(relevant: Sequence[bool] | np.ndarray, total_relevant: int) -> float:
    """Full-list AP (relevant items not retrieved count as misses)."""
    hits = np.asarray(relevant, dtype=bool)
    if total_relevant <= 0 or not hits.any():
        return 0.0
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].sum() / total_relevant)


def recall_at_k(relevant: Sequence[bool] | np.ndarray, k: int) -> float:
    """1.0 when any of the first k results is relevant (the In-shop / StyleFinder Rank-k)."""
    return float(np.asarray(relevant[:k], dtype=bool).any())


def macro_micro(per_query: Mapping[str, float], weights: Mapping[str, int]) -> tuple[float, float]:
    """(macro mean over queries, micro mean weighted by each query's relevant count)."""
    if not per_query:
        return 0.0, 0.0
    values = np.array([per_query[q] for q in per_query])
    counts = np.array([weights[q] for q in per_query], dtype=np.float64)
    return float(values.mean()), float((values * counts).sum() / counts.sum())


def precision_at_k(relevant: Sequence[bool] | np.ndarray, total_relevant: int, k: int = 10) -> float:
    """Relevant hits among the first k over min(k, total_relevant): 1.0 when every slot that could
    hold a relevant item does (a query with 5 relevant items scores 1.0 with all 5 in its top 10)."""
    if total_relevant <= 0:
        return 0.0
    return float(np.asarray(relevant[:k], dtype=bool).sum() / min(k, total_relevant))
