"""Query vectors for a search: from the query embedding cache, else from the embedder.

Text and image queries are embedded concurrently, failures mapped to search errors (a rejected
input is INVALID_ARGUMENT naming ``text`` or ``image``), and what was embedded is cached only once
the store has answered, under the alias target it answered from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from domain.lexical import LEXICAL_MEMBER
from domain.query_vectors import image_query_vector
from services.common.embed_client import EmbedderTimeout, EmbedderUnavailable, EmbedRejected, MemberVectors
from services.search.errors import SearchDeadlineExceeded, SearchUnavailable, SearchValidationError
from services.search.model import SearchQuery
from services.search.plan import mix
from services.search.query_cache import Key, QueryCache
from services.search.retrieval import Deadline


class EmbedClient(Protocol):
    """What the core needs from the embedder (the gRPC client, or an in-process stand-in)."""

    async def embed_texts(
        self, texts: Sequence[str], members: Sequence[str] | None = None, timeout: float | None = None
    ) -> list[MemberVectors]: ...

    async def embed_images(
        self, images: Sequence[bytes], members: Sequence[str] | None = None, timeout: float | None = None
    ) -> list[MemberVectors]: ...


class QueryEmbedding:
    """One bundle's query embeddings: the cache in front of the embedder."""

    def __init__(
        self,
        embedder: EmbedClient,
        cache: QueryCache,
        bundle_id: str,
        colour_dims: Mapping[str, int] | None = None,
    ) -> None:
        """``bundle_id`` keys the cache, so another bundle's vectors are never served;
        ``colour_dims[member]`` trailing colour-channel dimensions are left out of image queries."""
        self.embedder = embedder
        self.cache = cache
        self.bundle_id = bundle_id
        self.colour_dims = dict(colour_dims or {})

    async def embed(
        self, query: SearchQuery, weight: float, members: Sequence[str], deadline: Deadline
    ) -> tuple[dict[str, np.ndarray], list[tuple[Key, MemberVectors]]]:
        """Per-member query vectors: text, image, or ``normalize(w * text + (1 - w) * image)``.

        Only the dense members are embedded (the lexical query needs no embedder). Text and image
        embeddings come from the query cache when there; the ones embedded now are returned too,
        for :meth:`remember` once the store has answered.
        """
        members = [m for m in members if m != LEXICAL_MEMBER]
        if not members:
            return {}, []
        left = deadline.check("embedding")
        keys: dict[str, Key] = {}
        if weight > 0.0:
            keys["text"] = self.cache.text_key(self.bundle_id, query.text, members)
        if weight < 1.0:
            keys["image"] = self.cache.image_key(self.bundle_id, query.image, members)
        embedded: dict[str, MemberVectors] = {}
        tasks: dict[str, asyncio.Future[list[MemberVectors]]] = {}
        for field, key in keys.items():
            cached = self.cache.get(key)
            if cached is not None:
                embedded[field] = cached
            elif field == "text":
                tasks[field] = asyncio.ensure_future(self.embedder.embed_texts([query.text], members, left))
            else:
                tasks[field] = asyncio.ensure_future(self.embedder.embed_images([query.image], members, left))
        try:
            fresh = {field: await _embedded(field, task, deadline) for field, task in tasks.items()}
        finally:
            for task in tasks.values():
                task.cancel()
        embedded.update(fresh)
        pending = [(keys[field], vectors) for field, vectors in fresh.items()]
        if "image" not in embedded:
            return dict(embedded["text"]), pending
        image = {m: image_query_vector(v, self.colour_dims.get(m, 0)) for m, v in embedded["image"].items()}
        if "text" not in embedded:
            return image, pending
        text = embedded["text"]
        return {m: mix(text[m], image[m], weight) for m in text if m in image}, pending

    def remember(self, collection: str, pending: Sequence[tuple[Key, MemberVectors]]) -> None:
        """Cache what was embedded, after the alias target seen by the store (a new one drops the cache)."""
        self.cache.note_target(collection)
        for key, vectors in pending:
            self.cache.put(key, vectors)


async def _embedded(
    field: str, task: asyncio.Future[list[MemberVectors]], deadline: Deadline
) -> MemberVectors:
    """The one embedding of a task, with embedder failures mapped to search errors."""
    try:
        result = await asyncio.wait_for(task, deadline.check("embedding"))
    except EmbedRejected as exc:
        raise SearchValidationError(field, f"rejected by the embedder: {exc}") from exc
    except (EmbedderTimeout, TimeoutError) as exc:
        raise SearchDeadlineExceeded(f"embedder: no answer within the deadline ({field})") from exc
    except EmbedderUnavailable as exc:
        raise SearchUnavailable(f"embedder: {exc}") from exc
    if len(result) != 1:
        raise SearchUnavailable(f"embedder returned {len(result)} embeddings for one {field}")
    return {m: np.asarray(v, dtype=np.float32) for m, v in result[0].items()}


__all__ = ["EmbedClient", "QueryEmbedding"]
