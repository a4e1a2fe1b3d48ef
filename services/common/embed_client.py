"""The client side of the embedder process boundary, shared by ingest and search.

:class:`EmbedderClient` calls ``EmbedTexts`` / ``EmbedImages`` / ``GetBundle`` under a deadline and
returns ``[{member: float32 vector}]`` in input order. Failures become two exceptions:
:class:`EmbedRejected` (a ValueError: the embedder refused the input, INVALID_ARGUMENT) and
:class:`EmbedderUnavailable` (it failed, is overloaded or unreachable), with
:class:`EmbedderTimeout` for a missed deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import grpc
import numpy as np

from services.common.channels import open_channel
from services.common.deadlines import DeadlinePassed, bounded
from vitrine.v1 import embedder_pb2, embedder_pb2_grpc

MemberVectors = dict[str, np.ndarray]


class EmbedRejected(ValueError):
    """The embedder refused the input (INVALID_ARGUMENT), e.g. an undecodable image."""


class EmbedderUnavailable(RuntimeError):
    """The embedder failed, is overloaded or cannot be reached; ``code`` is the gRPC status."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


class EmbedderTimeout(EmbedderUnavailable):
    """The embedder did not answer within the deadline."""


def vectors_from_response(response: embedder_pb2.EmbedResponse, expected: int) -> list[MemberVectors]:
    """``[{member: float32 vector}]`` in input order; a wrong item count raises EmbedderUnavailable."""
    if len(response.embeddings) != expected:
        raise EmbedderUnavailable(
            f"embedder returned {len(response.embeddings)} embeddings for {expected} inputs"
        )
    return [
        {mv.member: np.asarray(mv.values, dtype=np.float32) for mv in embedding.vectors}
        for embedding in response.embeddings
    ]


def embed_error(exc: grpc.aio.AioRpcError, what: str) -> Exception:
    """The exception an embedder RPC failure maps to."""
    code = exc.code()
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return EmbedRejected(exc.details() or "embedder rejected the input")
    message = f"{what} failed: {code.name}: {exc.details()}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return EmbedderTimeout(message, code)
    return EmbedderUnavailable(message, code)


class EmbedderClient:
    """Async embedder calls over one gRPC channel.

    ``timeout_s`` is the default deadline of a call; ``members`` the default member subset (empty =
    all). With ``wait_for_ready`` a call waits (within its deadline) for an embedder that is
    starting instead of failing at once.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        timeout_s: float,
        members: Sequence[str] = (),
        wait_for_ready: bool = True,
    ) -> None:
        self.channel = channel
        self.stub = embedder_pb2_grpc.EmbedderStub(channel)
        self.timeout_s = timeout_s
        self.members = list(members)
        self.wait_for_ready = wait_for_ready

    @classmethod
    def connect(
        cls,
        address: str,
        timeout_s: float,
        *,
        tls_ca: str = "",
        auth_token: str = "",
        members: Sequence[str] = (),
        wait_for_ready: bool = True,
    ) -> Self:
        """A client on a new channel to ``address`` (TLS and bearer token when given)."""
        channel = open_channel(address, tls_ca=tls_ca, auth_token=auth_token)
        return cls(channel, timeout_s, members, wait_for_ready)

    def _members(self, members: Sequence[str] | None) -> list[str]:
        return self.members if members is None else list(members)

    def _timeout(self, timeout: float | None) -> float:
        """The call's deadline: ``timeout`` (default ``timeout_s``), never past the caller's own."""
        try:
            return bounded(self.timeout_s if timeout is None else timeout)
        except DeadlinePassed as exc:
            raise EmbedderTimeout(str(exc), grpc.StatusCode.DEADLINE_EXCEEDED) from exc

    async def embed_texts(
        self, texts: Sequence[str], members: Sequence[str] | None = None, timeout: float | None = None
    ) -> list[MemberVectors]:
        """One vector per member for each text, in input order."""
        request = embedder_pb2.EmbedTextsRequest(texts=list(texts), members=self._members(members))
        try:
            response = await self.stub.EmbedTexts(
                request, timeout=self._timeout(timeout), wait_for_ready=self.wait_for_ready
            )
        except grpc.aio.AioRpcError as exc:
            raise embed_error(exc, "EmbedTexts") from exc
        return vectors_from_response(response, len(texts))

    async def embed_images(
        self, images: Sequence[bytes], members: Sequence[str] | None = None, timeout: float | None = None
    ) -> list[MemberVectors]:
        """One vector per member for each encoded image, in input order."""
        request = embedder_pb2.EmbedImagesRequest(images=list(images), members=self._members(members))
        try:
            response = await self.stub.EmbedImages(
                request, timeout=self._timeout(timeout), wait_for_ready=self.wait_for_ready
            )
        except grpc.aio.AioRpcError as exc:
            raise embed_error(exc, "EmbedImages") from exc
        return vectors_from_response(response, len(images))

    async def __call__(self, images: list[bytes]) -> list[MemberVectors]:
        """``embed_images`` with the default members and deadline (the ingest core's callable form)."""
        return await self.embed_images(images)

    async def bundle_info(self, timeout: float | None = None) -> embedder_pb2.BundleInfo:
        """The embedder's loaded bundle (name, version, members); waits for a starting embedder."""
        try:
            return await self.stub.GetBundle(
                embedder_pb2.GetBundleRequest(), timeout=self._timeout(timeout), wait_for_ready=True
            )
        except grpc.aio.AioRpcError as exc:
            raise embed_error(exc, "GetBundle") from exc

    async def close(self) -> None:
        """Close the channel."""
        await self.channel.close()


__all__ = [
    "EmbedRejected",
    "EmbedderClient",
    "EmbedderTimeout",
    "EmbedderUnavailable",
    "MemberVectors",
    "embed_error",
    "vectors_from_response",
]
