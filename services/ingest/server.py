"""gRPC adapter for the ingest core: parse, call, map errors to status codes (a bug: INTERNAL, logged)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc

from domain.catalog import Product
from services.common.conditions import wire_conditions
from services.common.embed_client import EmbedderTimeout, EmbedderUnavailable
from services.common.status import call_core
from services.ingest.core import EmbedderMismatch, IngestCore, IngestSummary
from services.ingest.indexing import build_indexes
from services.ingest.reindex import ReindexIncomplete, ReindexRefused, reindex
from services.ingest.wire import from_proto
from services.storage.port import CollectionNotFound, StoreError
from vitrine.v1 import common_pb2, ingest_pb2, ingest_pb2_grpc

log = logging.getLogger("vitrine.ingest")
SERVICE_NAME = ingest_pb2.DESCRIPTOR.services_by_name["Ingest"].full_name
T = TypeVar("T")

# Most specific first: EmbedderTimeout is an EmbedderUnavailable, CollectionNotFound a StoreError.
STATUS_FOR: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (EmbedderTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (EmbedderUnavailable, grpc.StatusCode.UNAVAILABLE),
    (EmbedderMismatch, grpc.StatusCode.FAILED_PRECONDITION),
    (ReindexRefused, grpc.StatusCode.FAILED_PRECONDITION),
    (ReindexIncomplete, grpc.StatusCode.ABORTED),
    (CollectionNotFound, grpc.StatusCode.FAILED_PRECONDITION),
    (StoreError, grpc.StatusCode.UNAVAILABLE),
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT),
)


def to_summary(summary: IngestSummary) -> ingest_pb2.IngestSummary:
    """Wire summary with per-item errors."""
    return ingest_pb2.IngestSummary(
        received=summary.received,
        upserted=summary.upserted,
        failed=summary.failed,
        collection=summary.collection,
        errors=[
            common_pb2.ItemError(index=e.index, id=e.id, code=e.code, message=e.message)
            for e in summary.errors
        ],
    )


async def _products(requests: AsyncIterator[ingest_pb2.Product]) -> AsyncIterator[Product]:
    async for request in requests:
        yield from_proto(request)


class IngestServicer(ingest_pb2_grpc.IngestServicer):
    """Thin typed adapter over :class:`IngestCore`."""

    def __init__(self, core: IngestCore | None = None) -> None:
        self.core = core  # None while the store and bundle load: calls get UNAVAILABLE

    async def _run(self, context: grpc.aio.ServicerContext, call: Callable[[IngestCore], Awaitable[T]]) -> T:
        return await call_core(context, self.core, call, STATUS_FOR, service="ingest", log=log)

    async def Upsert(
        self, request_iterator: AsyncIterator[ingest_pb2.Product], context: grpc.aio.ServicerContext
    ) -> ingest_pb2.IngestSummary:
        """Ingest a stream of products; per-item problems come back in the summary."""
        summary = await self._run(context, lambda core: core.upsert_stream(_products(request_iterator)))
        return to_summary(summary)

    async def Delete(
        self, request: ingest_pb2.DeleteRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.DeleteResponse:
        """Delete by ids and/or filters (both: the ids that match the filters)."""
        conditions = wire_conditions(request.conditions)
        deleted = await self._run(
            context, lambda core: core.delete(list(request.ids), dict(request.filters), conditions)
        )
        return ingest_pb2.DeleteResponse(deleted=deleted)

    async def Count(
        self, request: ingest_pb2.CountRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.CountResponse:
        """Products (matching the filters) in the collection search reads."""
        conditions = wire_conditions(request.conditions)
        count, collection = await self._run(
            context, lambda core: core.count(dict(request.filters), conditions)
        )
        return ingest_pb2.CountResponse(count=count, collection=collection)

    async def Reindex(
        self, request: ingest_pb2.ReindexRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.ReindexSummary:
        """Re-embed into a new collection and swap the alias; search keeps answering meanwhile."""
        result = await self._run(context, lambda core: reindex(core, request.source_dir))
        return ingest_pb2.ReindexSummary(
            old_collection=result.old_collection,
            new_collection=result.new_collection,
            upserted=result.summary.upserted,
            failed=result.summary.failed,
        )

    async def Optimize(
        self, request: ingest_pb2.OptimizeRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.OptimizeSummary:
        """Build the vector indexes of what search reads now (call it after a load)."""
        built = await self._run(context, build_indexes)
        return ingest_pb2.OptimizeSummary(
            collections=built.collections, seconds=built.seconds, indexed_vectors=built.indexed_vectors
        )
