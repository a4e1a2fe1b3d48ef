"""Plain request and result types of the search core (the servicer converts them to protobuf)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from domain.fusion import Contribution
from services.storage.filters import WireCondition


@dataclass(frozen=True)
class SearchOptions:
    """What to return and how to rank it; shared by text/image search and more-like-this.

    Zero values mean "default" or "off": ``top_k`` 0 = the configured default, ``fusion`` "" =
    the bundle's method, ``members`` empty = all, ``min_score`` 0 = no threshold, ``mmr_lambda``
    0 = no MMR, ``max_per_cluster`` 0 = no cap, ``min_relevance`` 0 = the bundle's calibrated
    relevance threshold (``no_good_match`` when no hit reaches it).
    """

    top_k: int = 0
    offset: int = 0
    filters: Mapping[str, str] = field(default_factory=dict)
    fusion: str = ""
    members: Sequence[str] = ()
    explain: bool = False
    min_score: float = 0.0
    cluster_rerank: bool = False
    mmr_lambda: float = 0.0
    max_per_cluster: int = 0
    conditions: Sequence[WireCondition] = ()
    min_relevance: float = 0.0


@dataclass(frozen=True)
class SearchQuery:
    """A text and/or image query; ``text_weight`` (default 0.5) mixes the two per member."""

    text: str = ""
    image: bytes = b""
    text_weight: float | None = None
    options: SearchOptions = field(default_factory=SearchOptions)


@dataclass(frozen=True)
class SimilarQuery:
    """More-like-this: the stored vectors of product ``id`` are the query."""

    id: str
    include_self: bool = False
    options: SearchOptions = field(default_factory=SearchOptions)


@dataclass(frozen=True)
class ResultHit:
    """One returned product: fused score, display attributes, and the per-member evidence."""

    id: str
    score: float
    attributes: Mapping[str, str]
    matched_members: int = 0
    members: tuple[Contribution, ...] = ()  # filled only when the request asked to explain
    relevance: float = 0.0  # calibrated P(relevant); 0 without a calibrated bundle


@dataclass(frozen=True)
class SearchResult:
    """A page of hits; ``partial`` when some members did not answer (``missing_members``).

    ``skipped_members``: members not queried for this request, with why (the lexical member on a
    query without text). ``no_good_match``: no hit reaches ``relevance_threshold`` (calibrated
    bundles only; the threshold is 0 without calibration).
    """

    hits: list[ResultHit]
    partial: bool = False
    missing_members: list[str] = field(default_factory=list)
    fusion: str = ""
    collection: str = ""
    no_good_match: bool = False
    skipped_members: Mapping[str, str] = field(default_factory=dict)
    relevance_threshold: float = 0.0


@dataclass(frozen=True)
class FacetsQuery:
    """Facets over the items matching the filters, or over the fused candidates of a query."""

    text: str = ""
    image: bytes = b""
    filters: Mapping[str, str] = field(default_factory=dict)
    conditions: Sequence[WireCondition] = ()
    fields: Sequence[str] = ()
    limit: int = 0  # values per field; 0 = DEFAULT_FACET_VALUES


@dataclass(frozen=True)
class FacetsResult:
    """``{field: [(value as text, count), ...]}`` in the order asked; ``candidates`` with a query."""

    facets: dict[str, list[tuple[str, int]]]
    candidates: int = 0


__all__ = [
    "FacetsQuery",
    "FacetsResult",
    "ResultHit",
    "SearchOptions",
    "SearchQuery",
    "SearchResult",
    "SimilarQuery",
]
