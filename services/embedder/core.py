"""The embedder core: validation, off-loop decoding, micro-batched encoding. No gRPC here."""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from services.common.config import EmbedderConfig
from services.embedder.batcher import MicroBatcher
from services.embedder.encoder import EnsembleEncoder, ImageItem, TextItem, Vectors
from services.embedder.errors import InvalidInput
from services.embedder.images import decode_image

_ALLOWED_CONTROL = {"\t", "\n", "\r"}


@dataclass(frozen=True)
class EmbedResult:
    """Vectors per input (member -> vector, in the requested member order) plus warnings."""

    vectors: list[Vectors]
    members: tuple[str, ...]
    warnings: list[str]


class EmbedderCore:
    """Async front of the encoder: validates requests and shares batches across them."""

    def __init__(self, encoder: EnsembleEncoder, cfg: EmbedderConfig, batching: bool | None = None) -> None:
        self.encoder = encoder
        self.cfg = cfg
        self._decode_pool = ThreadPoolExecutor(max(1, cfg.decode_workers), thread_name_prefix="decode")
        self._compute = ThreadPoolExecutor(1, thread_name_prefix="compute")
        common = dict(
            max_batch=cfg.max_batch,
            max_wait_s=cfg.max_wait_ms / 1000.0,
            max_queue=cfg.max_queue,
            executor=self._compute,
            enabled=cfg.batching if batching is None else batching,
        )
        self._images: MicroBatcher[ImageItem, Vectors] = MicroBatcher(
            encoder.encode_images, kind="image", **common
        )
        self._texts: MicroBatcher[TextItem, Vectors] = MicroBatcher(
            encoder.encode_texts, kind="text", **common
        )

    def resolve_members(self, requested: Sequence[str]) -> tuple[str, ...]:
        """Requested member names in request order (empty -> all), or InvalidInput."""
        if not requested:
            return self.encoder.member_names
        valid = self.encoder.member_names
        seen: list[str] = []
        for i, name in enumerate(requested):
            if name not in valid:
                raise InvalidInput(f"members[{i}]", f"unknown member {name!r}; valid: {list(valid)}")
            if name not in seen:
                seen.append(name)
        return tuple(seen)

    def _check_count(self, field: str, n: int) -> None:
        if n == 0:
            raise InvalidInput(field, "at least one item is required")
        if n > self.cfg.max_items:
            raise InvalidInput(field, f"{n} items, over the limit of {self.cfg.max_items} per request")

    def _prepare_images(
        self, chunk: Sequence[tuple[int, bytes]], members: tuple[str, ...]
    ) -> list[ImageItem]:
        out = []
        for index, data in chunk:
            image = decode_image(
                data, f"images[{index}]", self.cfg.max_image_bytes, self.cfg.max_image_pixels
            )
            out.append(self.encoder.prepare_image(image, members))
        return out

    def _chunks(self, items: Sequence) -> list[list[tuple[int, object]]]:
        """Split indexed items into one contiguous chunk per decode worker (fewer thread hand-offs)."""
        workers = max(1, self.cfg.decode_workers)
        size = -(-len(items) // workers)
        indexed = list(enumerate(items))
        return [indexed[i : i + size] for i in range(0, len(indexed), size)]

    def check_text(self, text: str, index: int) -> str:
        """Validate one text; returns it stripped."""
        field = f"texts[{index}]"
        stripped = text.strip()
        if not stripped:
            raise InvalidInput(field, "empty text")
        if len(stripped) > self.cfg.max_text_chars:
            raise InvalidInput(
                field, f"text is {len(stripped)} characters, over the limit of {self.cfg.max_text_chars}"
            )
        if any(unicodedata.category(c) == "Cc" and c not in _ALLOWED_CONTROL for c in stripped):
            raise InvalidInput(field, "text contains control characters")
        return stripped

    def _prepare_text(self, text: str, index: int, members: tuple[str, ...]) -> tuple[TextItem, str | None]:
        item = self.encoder.prepare_text(text, members)
        limit = min(self.encoder.members[m].context_length for m in members)
        needed = max(self.encoder.token_count(text, m) for m in members)
        warning = f"texts[{index}]: truncated from {needed} to {limit} tokens" if needed > limit else None
        return item, warning

    async def embed_images(self, images: Sequence[bytes], members: Sequence[str] = ()) -> EmbedResult:
        """Decode, preprocess (off the event loop) and embed images with the requested members."""
        self._check_count("images", len(images))
        names = self.resolve_members(members)
        loop = asyncio.get_running_loop()
        with self._images.announced() as announcement:
            chunks = await asyncio.gather(
                *(
                    loop.run_in_executor(self._decode_pool, self._prepare_images, c, names)
                    for c in self._chunks(images)
                )
            )
            prepared = [item for chunk in chunks for item in chunk]
            return EmbedResult(await self._images.submit(prepared, announcement), names, [])

    async def embed_texts(self, texts: Sequence[str], members: Sequence[str] = ()) -> EmbedResult:
        """Tokenize and embed texts; over-long texts are truncated with a warning."""
        self._check_count("texts", len(texts))
        names = self.resolve_members(members)
        cleaned = [self.check_text(t, i) for i, t in enumerate(texts)]
        loop = asyncio.get_running_loop()
        with self._texts.announced() as announcement:
            prepared = await loop.run_in_executor(
                self._decode_pool, lambda: [self._prepare_text(t, i, names) for i, t in enumerate(cleaned)]
            )
            warnings = [w for _, w in prepared if w]
            vectors = await self._texts.submit([item for item, _ in prepared], announcement)
        return EmbedResult(vectors, names, warnings)

    async def close(self) -> None:
        """Stop batch workers and thread pools."""
        await self._images.close()
        await self._texts.close()
        self._decode_pool.shutdown(wait=False, cancel_futures=True)
        self._compute.shutdown(wait=False, cancel_futures=True)
