"""How a filtered member query is searched: an exact scan of its matches, a plain walk of the
HNSW graph, or an ACORN walk.

The engine plans a filtered query by one threshold: a filter whose matches hold fewer than
``full_scan_threshold`` KB of vectors is answered by scoring every match, a larger one walks the
graph, skipping the points that fail. A walk stays connected only where the graph has payload
links for the filter (``hnsw_payload_m`` > 0; vitrine builds them for tenant fields only). So one
threshold cannot serve both kinds of filter: a low one (1,000 KB) lets a tenant filter walk its
linked subgraph (brand + price: about half the exact scan's time, same results), but a selective
filter on unlinked fields then walks a graph that falls apart under it and finds a few percent of
its true neighbours.

Here the collection's threshold is the low, linked one, and a filter that names no linked field
is planned as before: its matches are estimated (a cheap count from the payload indexes), and a
member whose matching vectors hold fewer than ``unlinked_scan_threshold_kb`` KB (default 10,000,
the engine's own default threshold) is searched exactly over them. A member with more matches
walks the graph with ACORN (``unlinked_acorn``, on by default): the walk then also explores its
neighbours' neighbours, so it stays connected where the graph has no links for the filter. On
catalog-like data at 100k items x 4 members, a 20 % filter on an unlinked field found 0.73 of its
true top 10 in a plain walk at ef 256 and 1.00 with ACORN at ef 64 (bench/search_1m.py's data).
The engine skips ACORN by itself for a filter that keeps more than 40 % of the points.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from domain.lexical import SparseVector
from services.storage.port import SPARSE, Condition, Filters, MemberQuery
from services.storage.settings import IndexSettings

P = TypeVar("P")

VECTOR_BYTES = 4  # float32 components
ENGINE_FULL_SCAN_KB = 10_000  # Qdrant's threshold when a collection stores none


@dataclass(frozen=True)
class FilterGraph:
    """What a collection's graph offers a filtered query."""

    full_scan_threshold_kb: int  # the engine's: filters matching less are scanned by the engine
    linked: frozenset[str]  # fields with HNSW payload links

    @classmethod
    def of(
        cls, full_scan_threshold_kb: int, payload_m: int, indexes: Iterable[tuple[str, bool | None]]
    ) -> FilterGraph:
        """From a collection's stored threshold (0: the engine's default), ``payload_m`` and its
        payload indexes as ``(field, enable_hnsw)``."""
        return cls(full_scan_threshold_kb or ENGINE_FULL_SCAN_KB, linked_fields(payload_m, indexes))

    @classmethod
    def of_collection(cls, stored: IndexSettings, payload_schema: Mapping[str, Any]) -> FilterGraph:
        """From a collection's stored settings and its payload schema as the engine reports it
        (``{field: info}``, ``info.params.enable_hnsw`` where set)."""
        indexes = ((name, getattr(info.params, "enable_hnsw", None)) for name, info in payload_schema.items())
        return cls.of(stored.full_scan_threshold_kb, stored.payload_m, indexes)


def linked_fields(payload_m: int, indexes: Iterable[tuple[str, bool | None]]) -> frozenset[str]:
    """The fields of ``(field, enable_hnsw)`` payload indexes that have payload links: all whose
    links are not switched off, when the collection builds any (``payload_m`` > 0)."""
    if payload_m <= 0:
        return frozenset()
    return frozenset(name for name, enabled in indexes if enabled is not False)


def names_linked_field(filters: Filters, linked: frozenset[str]) -> bool:
    """Whether ``filters`` requires a value of a linked field (a walk stays inside its subgraph).

    Only a positive match counts: ``none_of`` and ranges leave the walk on the whole graph.
    """
    for name, wanted in filters.items():
        if name not in linked:
            continue
        if isinstance(wanted, Condition) and wanted.any_of:
            return True
        if not isinstance(wanted, Condition) and wanted:
            return True
    return False


def needs_estimate(filters: Filters | None, graph: FilterGraph, unlinked_kb: int) -> bool:
    """Whether the engine's own plan could walk an unlinked graph under ``filters``: there is a
    filter, it names no linked field, and the engine scans below a lower threshold than ours."""
    if not filters or graph.full_scan_threshold_kb >= unlinked_kb:
        return False
    return not names_linked_field(filters, graph.linked)


def scanned_members(matching: int, dims: Mapping[str, int], unlinked_kb: int) -> frozenset[str]:
    """The dense members whose vectors for ``matching`` points hold fewer than ``unlinked_kb`` KB."""
    return frozenset(
        member
        for member, dim in dims.items()
        if dim != SPARSE and matching * dim * VECTOR_BYTES < unlinked_kb * 1024
    )


def plan_scans(
    filters: Filters | None,
    graph: FilterGraph,
    dims: Mapping[str, int],
    unlinked_kb: int,
    estimate: Callable[[], int],
) -> frozenset[str]:
    """The members to search exactly under ``filters``; ``estimate()`` (the store's approximate
    count of the matches) is called only for a filter the engine alone could plan wrong."""
    if not needs_estimate(filters, graph, unlinked_kb):
        return frozenset()
    return scanned_members(estimate(), dims, unlinked_kb)


@dataclass(frozen=True)
class MemberParams(Generic[P]):
    """An adapter's search params for each way a member query can be planned."""

    configured: P  # unfiltered, or a filter that names a linked field
    scan: P  # exact, over the filter's matches
    acorn: P  # a graph walk with ACORN


@dataclass(frozen=True)
class MemberPlanner(Generic[P]):
    """An adapter's params for each plan and the query-time settings that choose between them."""

    params: MemberParams[P]
    unlinked_kb: int  # scan an unlinked filter's matches below this many KB of vectors
    unlinked_acorn: bool  # walk an unlinked filter with ACORN otherwise

    @classmethod
    def of(cls, settings: IndexSettings, search_params: Callable[..., P]) -> MemberPlanner[P]:
        """From the settings and the adapter's ``search_params(settings, exact=, acorn=)``."""
        params = MemberParams(
            search_params(settings), search_params(settings, exact=True), search_params(settings, acorn=True)
        )
        return cls(params, settings.unlinked_scan_threshold_kb, settings.unlinked_acorn)

    def plan(
        self,
        queries: Sequence[MemberQuery],
        filters: Filters | None,
        graph: FilterGraph,
        dims: Mapping[str, int],
        estimate: Callable[[], int],
    ) -> list[P | None]:
        """Search params per query: exact for members a filter on no linked field leaves few of,
        ACORN for the others under such a filter, else the configured ones; ``estimate()`` (the
        store's approximate count of the matches) is called only when the plan needs it."""
        scanned = plan_scans(filters, graph, dims, self.unlinked_kb, estimate)
        acorn = self.unlinked_acorn and walks_unlinked(filters, graph)
        return member_params(queries, scanned, self.params, acorn)


def walks_unlinked(filters: Filters | None, graph: FilterGraph) -> bool:
    """Whether a graph walk under ``filters`` has no payload links to stay connected by."""
    return bool(filters) and not names_linked_field(filters, graph.linked)


def member_params(
    queries: Sequence[MemberQuery], scanned: frozenset[str], params: MemberParams[P], acorn: bool
) -> list[P | None]:
    """Search params per query: none for a sparse member, ``scan`` (exact) for a scanned one,
    ``acorn`` for the others when ``acorn`` (an unlinked walk), else the configured ones."""
    walk = params.acorn if acorn else params.configured
    return [
        None if isinstance(q.vector, SparseVector) else params.scan if q.member in scanned else walk
        for q in queries
    ]
