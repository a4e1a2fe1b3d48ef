"""Rank fusion: one ranked list per ensemble member in, one fused ranked list out.

Each member contributes an ordered list of :class:`RankedHit` (product id, cosine score, the hit's
cluster under that member or -1). Ranks are 1-based positions in that list; when an id appears
twice in one member's list only its first (best) position counts. Methods:

``rrf``
    ``score(d) = sum_m 1 / (k + rank_m(d))`` over the members that retrieved ``d`` (k default 60).
``weighted_rrf``
    ``score(d) = sum_m w_m / (k + rank_m(d))`` with the member weights of the bundle.
``combsum``
    ``score(d) = sum_m norm_m(d)`` where ``norm_m`` min-max normalizes member ``m``'s cosines over
    its own list to [0, 1]: ``(s - min_m) / (max_m - min_m)``. Degenerate lists (one hit, or all
    scores equal) normalize every hit to 1.0.
``combmnz``
    ``combsum(d) * n(d)`` with ``n(d)`` the number of members that retrieved ``d``.
``borda``
    Depth-based Borda count normalized per member: with ``D`` the retrieval depth (the per-member
    fetch limit, or the longest list when not given), a hit at rank ``r`` earns ``(D - r + 1) / D``
    points (rank 1 earns 1.0), a member that did not retrieve ``d`` gives 0. Using one depth for all
    members keeps a short (filtered or truncated) list from devaluing its top hits.
``single:<member>``
    That member's list alone, scored by its cosine (other lists are ignored).

Every method orders by fused score (descending), then by the best rank any member gave the hit,
then by id, so equal scores always come out in the same order and pagination is stable. Sums use
``math.fsum`` so they do not depend on member order.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

DEFAULT_RRF_K = 60
METHODS = ("rrf", "weighted_rrf", "combsum", "combmnz", "borda")
SINGLE_PREFIX = "single:"


class RankedHit(NamedTuple):
    """One hit in one member's ranked list (a tuple: hundreds are built per search)."""

    id: str
    score: float
    cluster: int = -1


class Contribution(NamedTuple):
    """How one member ranked a fused hit."""

    member: str
    rank: int
    score: float
    cluster: int = -1


class FusedHit(NamedTuple):
    """A fused hit with the per-member evidence behind it (in member order)."""

    id: str
    score: float
    contributions: tuple[Contribution, ...]

    @property
    def best_rank(self) -> int:
        """Best (lowest) rank any member gave this hit."""
        return min(c.rank for c in self.contributions)

    @property
    def matched_members(self) -> int:
        """How many members retrieved this hit."""
        return len(self.contributions)

    def cluster(self, member: str) -> int:
        """Cluster id under ``member`` as that member reported it, or -1."""
        for c in self.contributions:
            if c.member == member:
                return c.cluster
        return -1


RankedLists = Mapping[str, Sequence[RankedHit]]
"""``{member: ranked hits}`` in member order."""


def sort_key(hit: FusedHit) -> tuple[float, int, str]:
    """Order: higher score first, then better best rank, then id."""
    return (-hit.score, hit.best_rank, hit.id)


Row = tuple[str, int, float, int]
"""One member's evidence for an id as a plain tuple (member, rank, score, cluster): the fields of a
:class:`Contribution`, which is built only for the hits a caller keeps."""

Points = Callable[[str, int, float], float]
"""What one member's evidence is worth: ``points(member, rank, score)``."""


def _rows(lists: RankedLists) -> dict[str, list[Row]]:
    """Per id, the evidence of the members that retrieved it (first occurrence per member)."""
    found: dict[str, list[Row]] = {}
    for member, hits in lists.items():
        for rank, hit in enumerate(hits, start=1):
            hit_id = hit[0]
            previous = found.get(hit_id)
            if previous is None:
                found[hit_id] = [(member, rank, float(hit[1]), hit[2])]
            elif previous[-1][0] != member:  # a repeat in the same member's list keeps its first rank
                previous.append((member, rank, float(hit[1]), hit[2]))
    return found


def collect(lists: RankedLists) -> dict[str, tuple[Contribution, ...]]:
    """Per id, the contributions of the members that retrieved it (first occurrence per member)."""
    make = Contribution._make
    return {hit_id: tuple(map(make, rows)) for hit_id, rows in _rows(lists).items()}


def _fuse(lists: RankedLists, points: Points, mnz: bool = False, limit: int | None = None) -> list[FusedHit]:
    """Sum ``points`` over each id's evidence (times the member count for MNZ) and sort; only the
    first ``limit`` hits (all when None) are built, with their contributions."""
    keyed = []
    for hit_id, rows in _rows(lists).items():
        if len(rows) == 1:
            member, best, score_m, _ = rows[0]
            score = float(points(member, best, score_m))
        else:
            score = math.fsum([points(m, r, s) for m, r, s, _ in rows])
            best = min([r for _, r, _, _ in rows])
        if mnz:
            score *= len(rows)
        keyed.append((-score, best, hit_id, rows))
    # ids are unique, so tuples order by (-score, best rank, id) and never compare their rows
    if limit is not None and limit < len(keyed) // 4:
        keyed = heapq.nsmallest(max(0, limit), keyed)  # a page of hundreds of candidates: no full sort
    else:
        keyed.sort()
        keyed = keyed if limit is None else keyed[: max(0, limit)]
    make = Contribution._make
    return [FusedHit(hit_id, -negated, tuple(map(make, rows))) for negated, _, hit_id, rows in keyed]


def _check_k(k: float) -> None:
    if not math.isfinite(k) or k < 0:
        raise ValueError(f"rrf k must be a finite number >= 0, got {k}")


def rrf(lists: RankedLists, k: float = DEFAULT_RRF_K, limit: int | None = None) -> list[FusedHit]:
    """Reciprocal rank fusion: ``sum_m 1 / (k + rank_m)``."""
    _check_k(k)
    return _fuse(lists, lambda _m, rank, _s: 1.0 / (k + rank), limit=limit)


def weighted_rrf(
    lists: RankedLists, weights: Mapping[str, float], k: float = DEFAULT_RRF_K, limit: int | None = None
) -> list[FusedHit]:
    """Weighted reciprocal rank fusion: ``sum_m w_m / (k + rank_m)``; every listed member needs a weight."""
    _check_k(k)
    for member in lists:
        if member not in weights:
            raise ValueError(
                f"weighted_rrf: no weight for member {member!r}; weights given: {sorted(weights)}"
            )
        if not math.isfinite(weights[member]) or weights[member] < 0:
            raise ValueError(f"weighted_rrf: weight of {member!r} must be finite and >= 0")
    return _fuse(lists, lambda member, rank, _s: weights[member] / (k + rank), limit=limit)


def minmax_normalizers(lists: RankedLists) -> dict[str, Callable[[float], float]]:
    """Per member, a function mapping its cosines to [0, 1] (degenerate lists map to 1.0)."""
    normalizers: dict[str, Callable[[float], float]] = {}
    for member, hits in lists.items():
        scores = [float(h.score) for h in hits]
        if not scores:
            continue
        low, high = min(scores), max(scores)
        if high - low <= 0.0:
            normalizers[member] = lambda s: 1.0
        else:
            normalizers[member] = lambda s, lo=low, span=high - low: (s - lo) / span
    return normalizers


def combsum(lists: RankedLists, limit: int | None = None) -> list[FusedHit]:
    """CombSUM over per-member min-max normalized cosines."""
    norms = minmax_normalizers(lists)
    return _fuse(lists, lambda member, _r, score: norms[member](score), limit=limit)


def combmnz(lists: RankedLists, limit: int | None = None) -> list[FusedHit]:
    """CombMNZ: CombSUM times the number of members that retrieved the hit."""
    norms = minmax_normalizers(lists)
    return _fuse(lists, lambda member, _r, score: norms[member](score), mnz=True, limit=limit)


def borda(lists: RankedLists, depth: int | None = None, limit: int | None = None) -> list[FusedHit]:
    """Depth-based Borda count: rank ``r`` earns ``(D - r + 1) / D``; ``D`` defaults to the longest list."""
    longest = max((len(hits) for hits in lists.values()), default=0)
    if depth is None:
        depth = longest
    if depth < longest:
        raise ValueError(f"borda: depth {depth} is shorter than the longest list ({longest})")
    if depth <= 0:
        return []
    return _fuse(lists, lambda _m, rank, _s: (depth - rank + 1) / depth, limit=limit)


def single(lists: RankedLists, member: str, limit: int | None = None) -> list[FusedHit]:
    """One member's list as it is, scored by cosine."""
    return _fuse({member: lists.get(member, ())}, lambda _m, _r, score: score, limit=limit)


@dataclass(frozen=True)
class FusionMethod:
    """A parsed fusion choice, ready to apply to ranked lists."""

    name: str  # canonical spelling, e.g. "rrf" or "single:m2"
    kind: str  # one of METHODS or "single"
    member: str = ""  # for "single"
    k: float = DEFAULT_RRF_K
    weights: Mapping[str, float] = field(default_factory=dict)

    def members_needed(self, members: Sequence[str]) -> tuple[str, ...]:
        """Members whose lists this method reads (single: only its member)."""
        return (self.member,) if self.kind == "single" else tuple(members)

    def fuse(self, lists: RankedLists, depth: int | None = None, limit: int | None = None) -> list[FusedHit]:
        """Apply the method; ``depth`` is the per-member fetch limit (used by Borda). With ``limit``
        only the first ``limit`` fused hits are built (the same hits as the whole list's head)."""
        if self.kind == "rrf":
            return rrf(lists, self.k, limit)
        if self.kind == "weighted_rrf":
            return weighted_rrf(lists, self.weights, self.k, limit)
        if self.kind == "combsum":
            return combsum(lists, limit)
        if self.kind == "combmnz":
            return combmnz(lists, limit)
        if self.kind == "borda":
            return borda(lists, depth, limit)
        return single(lists, self.member, limit)


def valid_choices(members: Sequence[str]) -> list[str]:
    """Every accepted fusion name for these members."""
    return [*METHODS, *(f"{SINGLE_PREFIX}{m}" for m in members)]


def parse_fusion(
    name: str,
    members: Sequence[str],
    *,
    k: float = DEFAULT_RRF_K,
    weights: Mapping[str, float] | None = None,
) -> FusionMethod:
    """Parse a fusion name (case-insensitive method, exact member name); ValueError lists the choices.

    ``weights`` default to 1.0 per member (used by ``weighted_rrf``).
    """
    _check_k(k)
    text = name.strip()
    weights = dict(weights) if weights is not None else dict.fromkeys(members, 1.0)
    if text.lower() in METHODS:
        return FusionMethod(text.lower(), text.lower(), k=k, weights=weights)
    if text.lower().startswith(SINGLE_PREFIX):
        member = text[len(SINGLE_PREFIX) :].strip()
        if member in members:
            return FusionMethod(f"{SINGLE_PREFIX}{member}", "single", member=member, k=k, weights=weights)
        raise ValueError(f"fusion {name!r}: unknown member {member!r}; valid members: {list(members)}")
    raise ValueError(f"unknown fusion {name!r}; valid: {valid_choices(members)}")


__all__ = [
    "DEFAULT_RRF_K",
    "METHODS",
    "Contribution",
    "FusedHit",
    "FusionMethod",
    "RankedHit",
    "RankedLists",
    "borda",
    "collect",
    "combmnz",
    "combsum",
    "minmax_normalizers",
    "parse_fusion",
    "rrf",
    "single",
    "sort_key",
    "valid_choices",
    "weighted_rrf",
]
