"""gRPC adapter for the search core: convert messages, map errors to status codes.

The caller's deadline reaches the core through :mod:`services.common.deadlines` (recorded by the
server interceptor); a bug in the core is logged with its traceback and answered INTERNAL.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from services.common.conditions import wire_conditions
from services.common.status import call_core
from services.search import model
from services.search.core import SearchCore
from services.search.errors import STATUS_FOR
from vitrine.v1 import search_pb2, search_pb2_grpc

log = logging.getLogger("vitrine.search")

SERVICE_NAME = search_pb2.DESCRIPTOR.services_by_name["Search"].full_name

T = TypeVar("T")
# SearchRequest fields that MoreLikeThisRequest does not have.
RANKING_FIELDS = ("cluster_rerank", "mmr_lambda", "max_per_cluster")


def facets_query(request: search_pb2.FacetsRequest) -> model.FacetsQuery:
    """Core facets query from a FacetsRequest."""
    return model.FacetsQuery(
        text=request.text,
        image=request.image,
        filters=dict(request.filters),
        conditions=wire_conditions(request.conditions),
        fields=list(request.fields),
        limit=request.limit,
    )


def facets_response(result: model.FacetsResult) -> search_pb2.FacetsResponse:
    """Protobuf facets from a core result."""
    return search_pb2.FacetsResponse(
        facets=[
            search_pb2.FacetField(
                field=name, values=[search_pb2.FacetValue(value=v, count=c) for v, c in values]
            )
            for name, values in result.facets.items()
        ],
        candidates=result.candidates,
    )


def search_options(request: search_pb2.SearchRequest | search_pb2.MoreLikeThisRequest) -> model.SearchOptions:
    """Core options from a SearchRequest or a MoreLikeThisRequest (re-ranking fields: Search only)."""
    ranking = {f: getattr(request, f) for f in RANKING_FIELDS if f in request.DESCRIPTOR.fields_by_name}
    return model.SearchOptions(
        top_k=request.top_k,
        offset=request.offset,
        filters=dict(request.filters),
        fusion=request.fusion,
        members=list(request.members),
        explain=request.explain,
        min_score=request.min_score,
        conditions=wire_conditions(request.conditions),
        min_relevance=request.min_relevance,
        **ranking,
    )


def search_query(request: search_pb2.SearchRequest) -> model.SearchQuery:
    """Core query from a SearchRequest (an unset text_weight stays None)."""
    weight = request.text_weight if request.HasField("text_weight") else None
    return model.SearchQuery(
        text=request.text, image=request.image, text_weight=weight, options=search_options(request)
    )


def similar_query(request: search_pb2.MoreLikeThisRequest) -> model.SimilarQuery:
    """Core query from a MoreLikeThisRequest."""
    return model.SimilarQuery(
        id=request.id, include_self=request.include_self, options=search_options(request)
    )


def to_hit(hit: model.ResultHit) -> search_pb2.Hit:
    """Protobuf hit with its member explanations (when the core attached them)."""
    return search_pb2.Hit(
        id=hit.id,
        score=hit.score,
        attributes=dict(hit.attributes),
        members=[
            search_pb2.MemberHit(member=c.member, rank=c.rank, score=c.score, cluster=c.cluster)
            for c in hit.members
        ],
        matched_members=hit.matched_members,
        relevance=hit.relevance,
    )


def to_response(result: model.SearchResult) -> search_pb2.SearchResponse:
    """Protobuf response from a core result."""
    return search_pb2.SearchResponse(
        hits=[to_hit(h) for h in result.hits],
        partial=result.partial,
        missing_members=result.missing_members,
        fusion=result.fusion,
        collection=result.collection,
        no_good_match=result.no_good_match,
        skipped_members=dict(result.skipped_members),
        relevance_threshold=result.relevance_threshold,
    )


class SearchServicer(search_pb2_grpc.SearchServicer):
    """Thin typed adapter over :class:`SearchCore`; ``core`` is None while the service starts."""

    def __init__(self, core: SearchCore | None = None) -> None:
        self.core = core

    async def _call(self, context: grpc.aio.ServicerContext, run: Callable[[SearchCore], Awaitable[T]]) -> T:
        """Run a core call; core errors become status codes, anything else INTERNAL."""
        return await call_core(context, self.core, run, STATUS_FOR, service="search", log=log)

    async def Search(
        self, request: search_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.SearchResponse:
        """Text and/or image search, fused across members."""
        query = search_query(request)
        return to_response(await self._call(context, lambda core: core.search(query)))

    async def MoreLikeThis(
        self, request: search_pb2.MoreLikeThisRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.SearchResponse:
        """Products similar to a stored product."""
        query = similar_query(request)
        return to_response(await self._call(context, lambda core: core.more_like_this(query)))

    async def GetItems(
        self, request: search_pb2.GetItemsRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.GetItemsResponse:
        """Stored attributes of products by id (unknown ids are left out)."""
        ids = list(request.ids)
        items = await self._call(context, lambda core: core.get_items(ids))
        return search_pb2.GetItemsResponse(items=[to_hit(h) for h in items])

    async def Facets(
        self, request: search_pb2.FacetsRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.FacetsResponse:
        """Value counts over the matching items, or over the fused candidates of a query."""
        query = facets_query(request)
        return facets_response(await self._call(context, lambda core: core.facets(query)))


__all__ = [
    "SERVICE_NAME",
    "SearchServicer",
    "facets_query",
    "facets_response",
    "search_query",
    "similar_query",
    "to_hit",
    "to_response",
]
