"""Calibrated relevance: P(relevant) of a query–item pair from the ensemble's evidence.

Training fits a logistic regression on validation pairs (each query's top fused hits, labelled
by the query set's relevance) and stores it in ``bundle.json["calibration"]``; search applies it
to every hit. The evidence of a pair (:func:`pair_features`), from the fused hit and the member
lists it was fused from:

* per dense member (bundle order): its cosine to the query, or the lowest cosine of its list when
  it did not retrieve the item (an upper bound), and ``1 / rank`` (0 when not retrieved);
* agreement: the share of the queried dense members that retrieved the item;
* lexical: whether the lexical member was queried, its BM25 score, ``1 / rank``, the score
  over the list's best score, the number of query terms and the score per term (0 when it did
  not retrieve the item or was not queried), and the share of the query's words the item has
  (:func:`domain.lexical.word_coverage`) and whether it has all of them (both 0 when the lexical
  member was not queried);
* ``1 / fused position``.

A member the request left out (``members``, ``single:``) gets the validation mean of its
features. ``threshold`` (chosen on validation) is the relevance a page needs at least once, else
the response says ``no_good_match``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.fusion import FusedHit, RankedHit
from domain.lexical import LEXICAL_MEMBER


def feature_names(members: Sequence[str]) -> list[str]:
    """Names of the features :func:`pair_features` returns, in order."""
    names = []
    for m in members:
        names += [f"{m}.cosine", f"{m}.inverse_rank"]
    return [
        *names,
        "agreement",
        "lexical.queried",
        "lexical.score",
        "lexical.inverse_rank",
        "lexical.share_of_best",
        "lexical.query_terms",
        "lexical.score_per_term",
        "lexical.coverage",
        "lexical.all_words",
        "inverse_position",
    ]


def pair_features(
    hit: FusedHit,
    position: int,
    lists: Mapping[str, Sequence[RankedHit]],
    members: Sequence[str],
    query_terms: int = 0,
    coverage: float = 0.0,
) -> list[float | None]:
    """The evidence of one fused hit at 1-based ``position``; None where a member was not queried.

    ``lists`` are the member lists the hit was fused from (the lexical one under
    :data:`LEXICAL_MEMBER` when it was queried); ``members`` are the bundle's dense members;
    ``query_terms`` the number of distinct terms of the lexical query; ``coverage`` the share of
    the query's words the item has.
    """
    found = {c.member: c for c in hit.contributions}
    row: list[float | None] = []
    queried = [m for m in members if m in lists]
    for m in members:
        if m not in lists:
            row += [None, None]
            continue
        contribution = found.get(m)
        if contribution is not None:
            row += [contribution.score, 1.0 / contribution.rank]
        else:
            floor = lists[m][-1].score if lists[m] else 0.0
            row += [float(floor), 0.0]
    agreement = sum(m in found for m in queried) / len(queried) if queried else None
    row.append(agreement)
    lexical = lists.get(LEXICAL_MEMBER)
    if lexical is None:
        row += [0.0] * 8
    else:
        contribution = found.get(LEXICAL_MEMBER)
        best = lexical[0].score if lexical else 0.0
        terms = float(query_terms)
        if contribution is None:
            row += [1.0, 0.0, 0.0, 0.0, terms, 0.0, coverage, float(coverage >= 1.0)]
        else:
            share = contribution.score / best if best > 0 else 0.0
            per_term = contribution.score / terms if terms > 0 else 0.0
            row += [1.0, contribution.score, 1.0 / contribution.rank, share, terms, per_term]
            row += [coverage, float(coverage >= 1.0)]
    row.append(1.0 / position)
    return row


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True)
class Calibration:
    """A fitted logistic regression over standardized pair features, and the no-good-match threshold."""

    members: tuple[str, ...]
    coefficients: tuple[float, ...]
    intercept: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float

    def __post_init__(self) -> None:
        width = len(feature_names(self.members))
        for name in ("coefficients", "mean", "scale"):
            values = getattr(self, name)
            if len(values) != width:
                raise ValueError(f"calibration.{name}: {len(values)} values, expected {width}")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"calibration.{name}: values must be finite")
        if any(s <= 0 for s in self.scale):
            raise ValueError("calibration.scale: values must be > 0")
        if not math.isfinite(self.intercept):
            raise ValueError("calibration.intercept must be finite")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"calibration.threshold must be within [0, 1], got {self.threshold}")

    def probability(self, row: Sequence[float | None]) -> float:
        """P(relevant) of one feature row (None entries take the validation mean)."""
        z = self.intercept
        for value, coef, mean, scale in zip(row, self.coefficients, self.mean, self.scale, strict=True):
            if value is not None:
                z += coef * (value - mean) / scale
        return _sigmoid(z)

    def relevance(
        self,
        fused: Sequence[FusedHit],
        lists: Mapping[str, Sequence[RankedHit]],
        query_terms: int = 0,
        first_position: int = 1,
        coverage: Sequence[float] | None = None,
    ) -> list[float]:
        """P(relevant) of each fused hit, in order (the first at ``first_position``); ``coverage``
        is each hit's share of the query's words (0 for all when not given)."""
        shares = coverage if coverage is not None else [0.0] * len(fused)
        return [
            self.probability(pair_features(hit, i, lists, self.members, query_terms, share))
            for i, (hit, share) in enumerate(zip(fused, shares, strict=True), start=first_position)
        ]

    def to_json(self) -> dict[str, Any]:
        """The ``bundle.json["calibration"]`` object (with the feature names, for reading)."""
        return {
            "model": "logistic_regression",
            "members": list(self.members),
            "features": feature_names(self.members),
            "coefficients": list(self.coefficients),
            "intercept": self.intercept,
            "mean": list(self.mean),
            "scale": list(self.scale),
            "threshold": self.threshold,
        }


def load_calibration(extra: Mapping[str, Any]) -> Calibration | None:
    """The calibration of a bundle's extra keys, or None when it has none."""
    data = extra.get("calibration")
    if not data:
        return None
    stored = data.get("features")
    if stored is not None and list(stored) != feature_names(data.get("members", ())):
        raise ValueError(
            "bundle calibration: fitted on other features than this version computes; "
            "refit it with `python -m training.calibrate --bundle DIR`"
        )
    try:
        return Calibration(
            members=tuple(data["members"]),
            coefficients=tuple(float(v) for v in data["coefficients"]),
            intercept=float(data["intercept"]),
            mean=tuple(float(v) for v in data["mean"]),
            scale=tuple(float(v) for v in data["scale"]),
            threshold=float(data["threshold"]),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"bundle calibration: malformed: {exc}") from exc


__all__ = ["Calibration", "feature_names", "load_calibration", "pair_features"]
