"""Fitting the lexical weight and the relevance calibration on a ranked suite; scoring them.

Pairs are each query's top ``PAIR_DEPTH`` fused hits (what a first page shows), labelled by the
query set's relevance; the evidence is :func:`domain.calibration.pair_features`, the function
search applies, over the same member lists. Out-of-catalog queries give pairs with label 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from domain.calibration import Calibration, pair_features  # noqa: E402
from domain.lexical import LEXICAL_MEMBER, query_vector, query_words, word_coverage  # noqa: E402
from training.queries import BRAND_SET, SHOPPER_SET  # noqa: E402
from training.retrieval import QuerySet, fusion_function, query_lists, score_system  # noqa: E402
from training.suite import Suite  # noqa: E402

PAIR_DEPTH = 10
LEXICAL_WEIGHTS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
CATEGORY_SET = "text->image articleType"
CATEGORY_SETS = ("text->image articleType", "text->image subCategory", "text->image masterCategory")
ALLOWED_DROP = 0.005  # on val; the issue allows 0.01 on test


@dataclass
class Pairs:
    """Feature rows (None = member not queried), labels, and per query its set name and pair rows."""

    rows: list[list[float | None]]
    labels: list[int]
    queries: list[tuple[str, slice]]


def suite_sets(suite: Suite) -> list[tuple[QuerySet, list[str]]]:
    """(query set, its query texts; none for image queries) for every set that has rankings."""
    sets = [(qs, texts) for qs, texts in suite.ranked_text_sets] + [(suite.image_set[0], [])]
    return [(qs, texts) for qs, texts in sets if qs.keys and qs.rankings]


def collect_pairs(suite: Suite, fuse: Callable, members: Sequence[str]) -> Pairs:
    """Every query's first-page pairs over the suite (image queries included, without lexical lists).

    A pair's word coverage reads ``suite.documents`` (0 when the suite has none).
    """
    pairs = Pairs([], [], [])
    for query_set, texts in suite_sets(suite):
        for q, lists in enumerate(query_lists(query_set, None)):
            lexical = bool(texts) and LEXICAL_MEMBER in lists
            terms = len(query_vector(texts[q]).indices) if lexical else 0
            words = query_words(texts[q]) if lexical and suite.documents else frozenset()
            start = len(pairs.rows)
            for position, hit in enumerate(fuse(lists)[:PAIR_DEPTH], start=1):
                share = word_coverage(words, suite.documents[int(hit.id)]) if words else 0.0
                pairs.rows.append(pair_features(hit, position, lists, members, terms, share))
                pairs.labels.append(int(query_set.relevant[q][int(hit.id)]))
            pairs.queries.append((query_set.name, slice(start, len(pairs.rows))))
    return pairs


def _matrix(rows: Sequence[Sequence[float | None]], fill: np.ndarray | None = None) -> np.ndarray:
    data = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)
    if fill is not None:
        data = np.where(np.isnan(data), fill, data)
    return data


def fit_calibration(pairs: Pairs, members: Sequence[str]) -> Calibration:
    """Logistic regression on standardized evidence (missing features take the column mean)."""
    raw = _matrix(pairs.rows)
    mean = np.nan_to_num(np.nanmean(raw, axis=0))
    data = np.where(np.isnan(raw), mean, raw)
    scale = data.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    labels = np.asarray(pairs.labels)
    if labels.min() == labels.max():
        raise ValueError("calibration needs relevant and irrelevant pairs; got only one kind")
    model = LogisticRegression(C=1.0, max_iter=2000).fit((data - mean) / scale, labels)
    return Calibration(
        members=tuple(members),
        coefficients=tuple(float(c) for c in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        mean=tuple(float(m) for m in mean),
        scale=tuple(float(s) for s in scale),
        threshold=0.5,
    )


def probabilities(calibration: Calibration, pairs: Pairs) -> np.ndarray:
    """P(relevant) of every pair."""
    return np.array([calibration.probability(row) for row in pairs.rows])


def page_maxima(pairs: Pairs, probs: np.ndarray, sets: Sequence[str]) -> np.ndarray:
    """Per query of the named sets, its page's best relevance (0 for an empty page)."""
    return np.array(
        [
            float(probs[rows].max()) if rows.stop > rows.start else 0.0
            for name, rows in pairs.queries
            if name in sets
        ]
    )


def choose_threshold(in_catalog: np.ndarray, out_of_catalog: np.ndarray) -> float:
    """The threshold that best separates pages: mean(in-catalog page reaches it) + mean(OOC does not).

    Candidates are midpoints between observed page maxima; ties take the lowest such threshold.
    """
    values = np.unique(np.concatenate([in_catalog, out_of_catalog]))
    candidates = (values[:-1] + values[1:]) / 2 if len(values) > 1 else values
    best, best_score = 0.5, -1.0
    for t in candidates:
        score = float(np.mean(in_catalog >= t)) + float(np.mean(out_of_catalog < t))
        if score > best_score + 1e-12:
            best, best_score = float(t), score
    return min(max(best, 0.0), 1.0)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-width bins: sum_b |B|/N * |mean label - mean probability|."""
    if len(probs) == 0:
        return 0.0
    index = np.minimum((probs * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(labels[mask].mean() - probs[mask].mean())
    return float(total)


def reliability_plot(probs: np.ndarray, labels: np.ndarray, path, title: str, bins: int = 10):
    """Reliability diagram (observed relevance per predicted bin) with bin counts; writes a PNG."""
    index = np.minimum((probs * bins).astype(int), bins - 1)
    centers, observed, counts = [], [], []
    for b in range(bins):
        mask = index == b
        if mask.any():
            centers.append(probs[mask].mean())
            observed.append(labels[mask].mean())
            counts.append(int(mask.sum()))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
    top.plot(centers, observed, "o-", color="tab:blue", label="vitrine")
    top.set_xlabel("predicted relevance")
    top.set_ylabel("observed share relevant")
    top.set_title(title, fontsize=9)
    top.legend()
    bottom.bar(np.arange(bins) / bins + 0.5 / bins, np.bincount(index, minlength=bins), width=0.9 / bins)
    bottom.set_xlabel("predicted relevance")
    bottom.set_ylabel("pairs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def calibration_report(calibration: Calibration, pairs: Pairs) -> dict:
    """ECE, and the no-good-match rates of out-of-catalog and category-prompt pages."""
    probs = probabilities(calibration, pairs)
    labels = np.asarray(pairs.labels, dtype=np.float64)
    ooc = page_maxima(pairs, probs, ("text->image out-of-catalog queries",))
    report = {
        "pairs": len(labels),
        "ece": expected_calibration_error(probs, labels),
        "threshold": calibration.threshold,
        "no_good_match": {
            "out_of_catalog": float(np.mean(ooc < calibration.threshold)) if len(ooc) else None,
        },
    }
    for name in (*CATEGORY_SETS, SHOPPER_SET, BRAND_SET, "image->image articleType"):
        maxima = page_maxima(pairs, probs, (name,))
        if len(maxima):
            report["no_good_match"][name] = float(np.mean(maxima < calibration.threshold))
    return report


def choose_lexical_weight(
    suite: Suite, method: str, weights: Mapping[str, float], rrf_k: float
) -> tuple[float, dict[str, dict[str, float]]]:
    """The lexical weight with the best brand P@10 whose category and shopper macro mAP@10 stay
    within ``ALLOWED_DROP`` of the dense members' fusion (the smallest weight when none does)."""
    sets = [qs for qs, _ in suite.text_sets if qs.name in (*CATEGORY_SETS, SHOPPER_SET, BRAND_SET)]
    sets = [qs for qs in sets if qs.keys and LEXICAL_MEMBER in qs.rankings]

    def scores(system: str, lexical_weight: float) -> dict[str, float]:
        fuse = fusion_function(system, {**weights, LEXICAL_MEMBER: lexical_weight}, rrf_k, suite.depth)
        out = {}
        for qs in sets:
            result = score_system(qs, fuse)
            out[qs.name] = result["p@10"] if qs.name == BRAND_SET else result["macro"]
        return out

    base = scores(f"{method} -lexical", 1.0)
    table = {"dense only": base}
    best, best_brand = LEXICAL_WEIGHTS[0], -1.0
    for w in LEXICAL_WEIGHTS:
        table[str(w)] = got = scores(method, w)
        keeps = all(got[n] >= base[n] - ALLOWED_DROP for n in (*CATEGORY_SETS, SHOPPER_SET) if n in base)
        if keeps and got.get(BRAND_SET, 0.0) > best_brand + 1e-9:
            best, best_brand = w, got.get(BRAND_SET, 0.0)
    return best, table


__all__ = [
    "LEXICAL_WEIGHTS",
    "PAIR_DEPTH",
    "Pairs",
    "calibration_report",
    "choose_lexical_weight",
    "choose_threshold",
    "collect_pairs",
    "expected_calibration_error",
    "fit_calibration",
    "page_maxima",
    "probabilities",
    "reliability_plot",
]
