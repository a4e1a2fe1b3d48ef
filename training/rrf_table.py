"""Weighted RRF over every query of a set at once, for the fusion-weight search.

``training.ensemble.coordinate_search`` scores a few dozen weight vectors on the same val
rankings. Fused query by query with ``domain.fusion`` (the code search runs) that costs about 2 ms
a query in Python (12.7 s for a search over 352 val queries; a build's suite has about 1,050).
An ``RRFTable`` lays the rankings out once as (query, candidate) arrays; a weight vector then
fuses and scores every query in numpy. Its AP@k
equals the one ``training.retrieval.score_system`` gives with ``weighted_rrf``: the same points
``w / (k + rank)``, and ties broken the same way (score, then best rank over every member that
retrieved the hit, then id as a string). The selected weights are then scored again with the
served fusion code, and that is the score the report shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from training.metrics import average_precision_at_k
from training.retrieval import QuerySet

ABSENT = np.iinfo(np.int64).max  # rank of a candidate a member did not retrieve


class RRFTable:
    """One query set's member rankings as (query, candidate) arrays."""

    def __init__(self, query_set: QuerySet, members: Sequence[str], k: int = 10, excluded_self: bool = False):
        self.members = tuple(members)
        self.k = k
        per_query = [self._candidates(query_set, q) for q in range(len(query_set.keys))]
        width = max((len(rows) for rows, _ in per_query), default=0)
        shape = (len(per_query), width)
        self.ranks = np.full((len(self.members), *shape), ABSENT, dtype=np.int64)
        self.valid = np.zeros(shape, dtype=bool)
        self.relevant = np.zeros(shape, dtype=bool)
        self.id_order = np.zeros(shape, dtype=np.int64)
        for q, (rows, ranks) in enumerate(per_query):
            n = len(rows)
            self.valid[q, :n] = True
            self.relevant[q, :n] = query_set.relevant[q][rows]
            self.ranks[:, q, :n] = ranks
            self.id_order[q, :n] = np.argsort(np.argsort([str(r) for r in rows], kind="stable"))
        self.best = np.where(self.valid, self.ranks.min(axis=0), ABSENT)
        self.totals = np.array(query_set.totals(excluded_self), dtype=np.int64)

    def _candidates(self, query_set: QuerySet, q: int) -> tuple[np.ndarray, np.ndarray]:
        """(candidate gallery rows, (members, candidates) ranks, 1-based; ABSENT where not retrieved)."""
        lists = [query_set.rankings[m][0][q] for m in self.members]
        rows = np.unique(np.concatenate(lists)) if lists else np.zeros(0, np.int64)
        ranks = np.full((len(lists), len(rows)), ABSENT, dtype=np.int64)
        for i, ranked in enumerate(lists):
            _, first = np.unique(ranked, return_index=True)  # a repeated row keeps its first rank
            kept = ranked[np.sort(first)]
            ranks[i, np.searchsorted(rows, kept)] = np.sort(first) + 1
        return rows, ranks

    def scores(self, weights: Mapping[str, float], rrf_k: float) -> np.ndarray:
        """(query, candidate) fused scores: ``sum_m w_m / (rrf_k + rank_m)``."""
        total = np.zeros(self.valid.shape, dtype=np.float64)
        for i, member in enumerate(self.members):
            present = self.ranks[i] != ABSENT
            total += np.where(present, weights[member] / (rrf_k + np.where(present, self.ranks[i], 0)), 0.0)
        return total

    def per_query(self, weights: Mapping[str, float], rrf_k: float) -> np.ndarray:
        """AP@k of every query under weighted RRF with ``weights``."""
        if not self.valid.size:
            return np.zeros(len(self.totals))
        score = np.where(self.valid, -self.scores(weights, rrf_k), np.inf)
        order = np.lexsort((self.id_order, self.best, score), axis=1)[:, : self.k]
        hits = np.take_along_axis(self.relevant, order, axis=1)
        return np.array(
            [average_precision_at_k(h, t, self.k) for h, t in zip(hits, self.totals, strict=True)]
        )

    def macro(self, weights: Mapping[str, float], rrf_k: float) -> float:
        """Mean AP@k over the queries (``score_system``'s ``macro``)."""
        values = self.per_query(weights, rrf_k)
        return float(values.mean()) if len(values) else 0.0


__all__ = ["RRFTable"]
