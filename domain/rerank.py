"""Post-fusion re-ranking: ENCLIP cluster agreement, MMR diversification, a per-cluster cap.

Cluster-aware re-rank (ENCLIP)
    Each member's top-``n`` hits vote for a cluster (under that member's k-means): the member's
    *majority cluster* is the most frequent known cluster id among them (ties: the cluster whose
    best hit ranks higher). For a fused hit ``d`` let ``a(d)`` be the fraction of voting members
    under which ``d`` lies in that member's majority cluster. The boosted score is
    ``s'(d) = s(d) + beta * a(d) * |s(d)|`` -- a relative boost of up to ``beta`` (default 0.5)
    that works on every fusion scale and also moves negative cosines (``single:``) upwards. The
    cluster of ``d`` under a member comes from ``clusters[d][member]`` when given (the stored
    payload knows every member's cluster), else from that member's own hit.

MMR
    Greedy maximal marginal relevance: repeatedly pick the candidate maximizing
    ``lam * rel(d) - (1 - lam) * max_{s in selected} sim(d, s)`` with ``rel`` the fused score min-max
    normalized over the candidates (all equal -> 1.0). ``sim`` is a callable or the cosine of
    vectors from a dict (a candidate without a vector has similarity 0 to everything).

Per-cluster cap
    Walk the ranking and keep at most ``n`` hits per cluster; hits whose cluster is unknown (-1)
    are never capped.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from domain.fusion import FusedHit, RankedLists, sort_key

DEFAULT_CLUSTER_BOOST = 0.5
DEFAULT_CLUSTER_TOP_N = 10

ClusterMap = Mapping[str, Mapping[str, int]]
"""``{hit id: {member: cluster id}}`` (hit ids as fused: the search core fuses store keys)."""


def majority_clusters(lists: RankedLists, top_n: int = DEFAULT_CLUSTER_TOP_N) -> dict[str, int]:
    """Per member, the most frequent known cluster among its top ``top_n`` hits (members without any are left out)."""
    if top_n <= 0:
        raise ValueError(f"cluster top_n must be > 0, got {top_n}")
    majority: dict[str, int] = {}
    for member, hits in lists.items():
        counts: Counter[int] = Counter()
        first_rank: dict[int, int] = {}
        for rank, hit in enumerate(hits[:top_n], start=1):
            if hit.cluster < 0:
                continue
            counts[hit.cluster] += 1
            first_rank.setdefault(hit.cluster, rank)
        if counts:
            majority[member] = max(counts, key=lambda c: (counts[c], -first_rank[c]))
    return majority


def cluster_of(hit: FusedHit, member: str, clusters: ClusterMap | None = None) -> int:
    """``hit``'s cluster under ``member``: from ``clusters`` when known, else from its contribution."""
    if clusters is not None:
        known = clusters.get(hit.id, {}).get(member)
        if known is not None:
            return int(known)
    return hit.cluster(member)


def cluster_rerank(
    fused: Sequence[FusedHit],
    lists: RankedLists,
    *,
    boost: float = DEFAULT_CLUSTER_BOOST,
    top_n: int = DEFAULT_CLUSTER_TOP_N,
    clusters: ClusterMap | None = None,
) -> list[FusedHit]:
    """Boost hits lying in the members' majority clusters (see the module docstring) and re-sort."""
    if not math.isfinite(boost) or boost < 0:
        raise ValueError(f"cluster boost must be finite and >= 0, got {boost}")
    majority = majority_clusters(lists, top_n)
    if not majority:
        return list(fused)
    boosted = []
    for hit in fused:
        agree = sum(1 for m, c in majority.items() if cluster_of(hit, m, clusters) == c)
        score = hit.score + boost * (agree / len(majority)) * abs(hit.score)
        boosted.append(hit._replace(score=score))
    return sorted(boosted, key=sort_key)


def _relevance(hits: Sequence[FusedHit]) -> np.ndarray:
    scores = np.array([h.score for h in hits], dtype=np.float64)
    span = float(scores.max() - scores.min())
    return np.ones_like(scores) if span <= 0.0 else (scores - scores.min()) / span


def _similarity_matrix(
    hits: Sequence[FusedHit], similarity: Callable[[str, str], float] | Mapping[str, np.ndarray]
) -> np.ndarray:
    """Pairwise similarities of the candidates, from a callable or from vectors (cosine)."""
    n = len(hits)
    if callable(similarity):
        matrix = np.zeros((n, n), dtype=np.float64)
        for i in range(n):
            for j in range(i + 1, n):
                matrix[i, j] = matrix[j, i] = float(similarity(hits[i].id, hits[j].id))
        return matrix
    dims = {np.asarray(v).size for v in similarity.values()}
    if len(dims) > 1:
        raise ValueError(f"mmr vectors must all have one size, got sizes {sorted(dims)}")
    dim = dims.pop() if dims else 1
    vectors = np.zeros((n, dim), dtype=np.float64)
    for i, hit in enumerate(hits):
        if hit.id in similarity:
            v = np.asarray(similarity[hit.id], dtype=np.float64).reshape(-1)
            norm = float(np.linalg.norm(v))
            vectors[i] = v / norm if norm > 0 else v
    return vectors @ vectors.T


def mmr(
    hits: Sequence[FusedHit],
    similarity: Callable[[str, str], float] | Mapping[str, np.ndarray],
    lam: float,
    limit: int | None = None,
) -> list[FusedHit]:
    """Maximal marginal relevance order of ``hits`` (first ``limit`` picks); scores are kept as fused."""
    if not math.isfinite(lam) or not 0.0 <= lam <= 1.0:
        raise ValueError(f"mmr lambda must be within [0, 1], got {lam}")
    limit = len(hits) if limit is None else min(limit, len(hits))
    if limit <= 0:
        return []
    relevance = _relevance(hits)
    sims = _similarity_matrix(hits, similarity)
    available = np.ones(len(hits), dtype=bool)
    max_sim = np.zeros(len(hits), dtype=np.float64)
    chosen: list[int] = []
    for _ in range(limit):
        gains = lam * relevance - (1.0 - lam) * max_sim if chosen else relevance.copy()
        gains[~available] = -np.inf
        pick = int(np.argmax(gains))  # first index wins ties: candidates arrive in fused order
        chosen.append(pick)
        available[pick] = False
        max_sim = sims[:, pick].copy() if len(chosen) == 1 else np.maximum(max_sim, sims[:, pick])
    return [hits[i] for i in chosen]


def cap_per_cluster(
    hits: Sequence[FusedHit], max_per_cluster: int, cluster_key: Callable[[FusedHit], int]
) -> list[FusedHit]:
    """Keep at most ``max_per_cluster`` hits per cluster, in order; unknown clusters (-1) are kept."""
    if max_per_cluster <= 0:
        raise ValueError(f"max_per_cluster must be > 0, got {max_per_cluster}")
    taken: Counter[int] = Counter()
    kept = []
    for hit in hits:
        key = cluster_key(hit)
        if key >= 0:
            if taken[key] >= max_per_cluster:
                continue
            taken[key] += 1
        kept.append(hit)
    return kept


__all__ = [
    "DEFAULT_CLUSTER_BOOST",
    "DEFAULT_CLUSTER_TOP_N",
    "ClusterMap",
    "cap_per_cluster",
    "cluster_of",
    "cluster_rerank",
    "majority_clusters",
    "mmr",
]
