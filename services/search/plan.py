"""Request validation: turn :class:`SearchOptions` into a checked :class:`Plan`, or name the bad field.

Fetch depth: each member returns ``max(min_candidates, ceil((offset + top_k) * overfetch))``
candidates (plus one when the query item itself will be dropped). The floor makes the first
pages of a query fuse exactly the same lists, so page 1 + page 2 equals the top 2k.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from domain.bundle import Bundle
from domain.fusion import FusionMethod, parse_fusion
from domain.lexical import LEXICAL_MEMBER, ensemble_members, ensemble_weights
from domain.schema import FASHION_SCHEMA, CatalogSchema
from services.common.config import SearchConfig
from services.search.errors import SearchValidationError
from services.search.model import SearchOptions
from services.storage.filters import parse_request_filters
from services.storage.port import Condition

DEFAULT_TEXT_WEIGHT = 0.5


@dataclass(frozen=True)
class Plan:
    """A validated request: members to query, fusion, page, filters and re-ranking switches."""

    members: tuple[str, ...]
    method: FusionMethod
    top_k: int
    offset: int
    depth: int
    filters: dict[str, Condition]
    explain: bool = False
    min_score: float = 0.0
    cluster_rerank: bool = False
    mmr_lambda: float = 0.0
    max_per_cluster: int = 0
    min_relevance: float = 0.0  # 0 = the bundle's threshold

    @property
    def end(self) -> int:
        """Index just past the last hit of the page."""
        return self.offset + self.top_k


def check_config(cfg: SearchConfig) -> None:
    """Raise ValueError naming the first unusable search setting."""
    checks = [
        ("default_top_k", 0 < cfg.default_top_k <= cfg.max_top_k, "must be within 1..max_top_k"),
        ("max_offset", cfg.max_offset >= 0, "must be >= 0"),
        ("overfetch", math.isfinite(cfg.overfetch) and cfg.overfetch >= 1.0, "must be >= 1"),
        ("min_candidates", cfg.min_candidates >= 1, "must be >= 1"),
        ("rrf_k", cfg.rrf_k >= 0, "must be >= 0 (0 = the bundle's k)"),
        ("max_filters", cfg.max_filters >= 0, "must be >= 0"),
        ("facet_candidates", cfg.facet_candidates >= 1, "must be >= 1"),
        ("image_expansion", cfg.image_expansion >= 0, "must be >= 0 (0 = no expansion)"),
        ("cluster_boost", math.isfinite(cfg.cluster_boost) and cfg.cluster_boost >= 0, "must be >= 0"),
        ("cluster_top_n", cfg.cluster_top_n >= 1, "must be >= 1"),
        ("rpc_timeout_s", cfg.rpc_timeout_s > 0, "must be > 0"),
        ("query_cache_size", cfg.query_cache_size >= 0, "must be >= 0 (0 = no cache)"),
        (
            "query_cache_ttl_s",
            math.isfinite(cfg.query_cache_ttl_s) and cfg.query_cache_ttl_s >= 0,
            "must be >= 0 (0 = no expiry)",
        ),
        (
            "reply_reserve_s",
            0 <= cfg.reply_reserve_s < cfg.rpc_timeout_s,
            "must be within [0, rpc_timeout_s)",
        ),
    ]
    for name, ok, reason in checks:
        if not ok:
            raise ValueError(f"search.{name} {reason}, got {getattr(cfg, name)!r}")


def _members(requested: Sequence[str], bundle: Bundle) -> tuple[str, ...]:
    """Requested members in bundle order (the lexical one last) without repeats; empty means all."""
    valid = ensemble_members(bundle)
    for name in requested:
        if name not in valid:
            raise SearchValidationError("members", f"unknown member {name!r}; valid: {list(valid)}")
    chosen = set(requested)
    return tuple(m for m in valid if m in chosen) if chosen else valid


def _page(options: SearchOptions, cfg: SearchConfig) -> tuple[int, int]:
    if options.top_k < 0 or options.top_k > cfg.max_top_k:
        raise SearchValidationError("top_k", f"must be within 0..{cfg.max_top_k} (0 = {cfg.default_top_k})")
    if options.offset < 0 or options.offset > cfg.max_offset:
        raise SearchValidationError("offset", f"must be within 0..{cfg.max_offset}")
    return options.top_k or cfg.default_top_k, options.offset


def _reranking(options: SearchOptions) -> None:
    if not math.isfinite(options.min_score):
        raise SearchValidationError("min_score", f"must be a finite number, got {options.min_score}")
    if not math.isfinite(options.mmr_lambda) or not 0.0 <= options.mmr_lambda <= 1.0:
        raise SearchValidationError(
            "mmr_lambda", f"must be within [0, 1] (0 = off), got {options.mmr_lambda}"
        )
    if options.max_per_cluster < 0:
        raise SearchValidationError(
            "max_per_cluster", f"must be >= 0 (0 = off), got {options.max_per_cluster}"
        )
    if not math.isfinite(options.min_relevance) or not 0.0 <= options.min_relevance <= 1.0:
        raise SearchValidationError(
            "min_relevance",
            f"must be within [0, 1] (0 = the bundle's threshold), got {options.min_relevance}",
        )


def request_filters(options: SearchOptions, cfg: SearchConfig, schema: CatalogSchema) -> dict[str, Condition]:
    """The request's filters and conditions typed by ``schema``; SearchValidationError names the field."""
    try:
        return parse_request_filters(options.filters, options.conditions, schema, max_fields=cfg.max_filters)
    except ValueError as exc:
        text = str(exc)
        raise SearchValidationError(
            "conditions" if text.startswith("conditions") else "filters", text
        ) from exc


def make_plan(
    options: SearchOptions,
    cfg: SearchConfig,
    bundle: Bundle,
    drop_one: bool = False,
    schema: CatalogSchema = FASHION_SCHEMA,
) -> Plan:
    """Validate ``options``; ``drop_one`` fetches one extra candidate (the query item is dropped later)."""
    top_k, offset = _page(options, cfg)
    selected = _members(options.members, bundle)
    fusion_name = options.fusion.strip() or bundle.fusion.method
    try:
        method = parse_fusion(
            fusion_name, selected, k=cfg.rrf_k or bundle.fusion.rrf_k, weights=ensemble_weights(bundle)
        )
    except ValueError as exc:
        raise SearchValidationError("fusion", str(exc)) from exc
    filters = request_filters(options, cfg, schema)
    _reranking(options)
    depth = max(cfg.min_candidates, math.ceil((offset + top_k) * cfg.overfetch)) + (1 if drop_one else 0)
    return Plan(
        members=method.members_needed(selected),
        method=method,
        top_k=top_k,
        offset=offset,
        depth=depth,
        filters=filters,
        explain=options.explain,
        min_score=options.min_score,
        cluster_rerank=options.cluster_rerank,
        mmr_lambda=options.mmr_lambda,
        max_per_cluster=options.max_per_cluster,
        min_relevance=options.min_relevance,
    )


def text_weight(text: str, image: bytes, weight: float | None) -> float:
    """The text share of a combined query (1.0 text only, 0.0 image only); needs text or image."""
    if weight is not None and (not math.isfinite(weight) or not 0.0 <= weight <= 1.0):
        raise SearchValidationError("text_weight", f"must be within [0, 1], got {weight}")
    has_text = bool(text.strip())
    if not has_text and not image:
        raise SearchValidationError("text", "give a text, an image or both")
    if not image:
        return 1.0
    if not has_text:
        return 0.0
    return DEFAULT_TEXT_WEIGHT if weight is None else weight


def fused_limit(plan: Plan, excluded: str | None) -> int | None:
    """How many fused hits the page needs (None: all, for re-ranking or MMR over the candidates).

    The score threshold keeps a prefix of the fused order, so it needs no more than the page.
    """
    if plan.cluster_rerank or plan.max_per_cluster > 0 or plan.mmr_lambda > 0.0:
        return None
    return plan.end + (excluded is not None)


def with_text_share(plan: Plan, weight: float) -> Plan:
    """The plan with the lexical member's share of the fusion weight scaled by the query's text weight.

    The bundle's lexical weight is learned on text-only queries, where the words are the whole
    query. In a text + image query (text weight ``w`` < 1) they are only part of it, so the lexical
    member keeps ``w`` times its learned share ``s`` of the total weight: its weight becomes
    ``w*s / (1 - w*s) * dense`` (``dense``: the sum of the queried dense members' weights).
    Text-only queries (``w`` = 1) and methods without weights are unchanged.
    """
    weights = plan.method.weights
    if weight >= 1.0 or plan.method.kind != "weighted_rrf" or LEXICAL_MEMBER not in plan.members:
        return plan
    dense = math.fsum(weights.get(m, 0.0) for m in plan.members if m != LEXICAL_MEMBER)
    lexical = weights.get(LEXICAL_MEMBER, 0.0)
    if dense <= 0.0 or lexical <= 0.0:
        return plan
    share = weight * lexical / (lexical + dense)
    method = dataclasses.replace(
        plan.method, weights={**weights, LEXICAL_MEMBER: share / (1.0 - share) * dense}
    )
    return dataclasses.replace(plan, method=method)


def mix(text_vector: np.ndarray, image_vector: np.ndarray, weight: float) -> np.ndarray:
    """``normalize(w * t + (1 - w) * i)`` for one member."""
    mixed = weight * np.asarray(text_vector, np.float32) + (1.0 - weight) * np.asarray(
        image_vector, np.float32
    )
    norm = float(np.linalg.norm(mixed))
    if norm < 1e-12:
        raise SearchValidationError("text_weight", "text and image vectors cancel out; change text_weight")
    return mixed / norm


__all__ = [
    "fused_limit",
    "with_text_share",
    "DEFAULT_TEXT_WEIGHT",
    "Plan",
    "check_config",
    "make_plan",
    "mix",
    "request_filters",
    "text_weight",
]
