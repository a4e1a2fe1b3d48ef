"""gRPC adapter for the embedder core: parse, call, map errors to status codes."""

from __future__ import annotations

import grpc

from services.embedder.core import EmbedderCore, EmbedResult
from services.embedder.errors import InvalidInput, Overloaded
from vitrine.v1 import common_pb2, embedder_pb2, embedder_pb2_grpc

SERVICE_NAME = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name


def to_response(result: EmbedResult) -> embedder_pb2.EmbedResponse:
    """Protobuf response from core vectors (member order as requested)."""
    embeddings = [
        common_pb2.Embedding(
            vectors=[common_pb2.MemberVector(member=m, values=vectors[m].tolist()) for m in result.members]
        )
        for vectors in result.vectors
    ]
    return embedder_pb2.EmbedResponse(embeddings=embeddings, warnings=result.warnings)


class EmbedderServicer(embedder_pb2_grpc.EmbedderServicer):
    """Thin typed adapter over :class:`EmbedderCore`."""

    def __init__(self, core: EmbedderCore | None = None) -> None:
        self.core = core  # None while the bundle loads: calls get UNAVAILABLE

    async def _ready(self, context: grpc.aio.ServicerContext) -> EmbedderCore:
        if self.core is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "embedder is loading its bundle")
        return self.core

    async def _call(self, context: grpc.aio.ServicerContext, make_call) -> EmbedResult:
        core = await self._ready(context)
        try:
            return await make_call(core)
        except InvalidInput as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Overloaded as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        raise AssertionError("unreachable: context.abort raises")

    async def EmbedTexts(
        self, request: embedder_pb2.EmbedTextsRequest, context: grpc.aio.ServicerContext
    ) -> embedder_pb2.EmbedResponse:
        """Embed texts with the requested members (empty = all)."""
        result = await self._call(
            context, lambda c: c.embed_texts(list(request.texts), list(request.members))
        )
        return to_response(result)

    async def EmbedImages(
        self, request: embedder_pb2.EmbedImagesRequest, context: grpc.aio.ServicerContext
    ) -> embedder_pb2.EmbedResponse:
        """Embed encoded images with the requested members (empty = all)."""
        result = await self._call(
            context, lambda c: c.embed_images(list(request.images), list(request.members))
        )
        return to_response(result)

    async def GetBundle(
        self, request: embedder_pb2.GetBundleRequest, context: grpc.aio.ServicerContext
    ) -> embedder_pb2.BundleInfo:
        """Describe the loaded bundle."""
        encoder = (await self._ready(context)).encoder
        bundle = encoder.bundle
        members = [
            common_pb2.Member(
                name=m.name,
                arch=m.arch,
                dim=m.dim,
                pretrained=m.pretrained,
                image_size=m.image_size,
                weight=m.weight,
                colour_dims=m.colour_dims,
            )
            for m in bundle.members
        ]
        return embedder_pb2.BundleInfo(
            name=bundle.name,
            version=bundle.version,
            members=members,
            device=str(encoder.device),
            precision=encoder.precision,
            default_fusion=bundle.fusion.method,
            context_length=encoder.context_length(),
        )
