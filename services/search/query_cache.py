"""Query embedding cache: repeated text (and image) queries skip the embedder.

An LRU (with an optional TTL) of ``{member: vector}`` keyed by the bundle that made the vectors,
the members asked for, and the query: text by its normalized form (whitespace collapsed and,
when ``casefold``, lower-cased, as the bundle's tokenizers do), images by the sha256 of their
bytes. Text and images share one size limit. The whole cache is dropped when the bundle or the
catalog alias's target changes, so it never serves vectors of another bundle version.

Used from the search core's event loop only (not thread-safe by design).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence

import numpy as np
from cachetools import LRUCache, TTLCache
from prometheus_client import Counter

from services.common.embed_client import MemberVectors

QUERY_CACHE_HITS = Counter(
    "vitrine_search_query_cache_hits_total", "Query embeddings served from the cache", ["kind"]
)
QUERY_CACHE_MISSES = Counter(
    "vitrine_search_query_cache_misses_total", "Query embeddings not in the cache (embedded)", ["kind"]
)
QUERY_CACHE_DROPS = Counter(
    "vitrine_search_query_cache_drops_total", "Whole-cache drops on a bundle or alias change", ["reason"]
)

Key = tuple[str, str, str, tuple[str, ...]]  # (bundle, kind, normalized text or sha256, members)


def normalize_text(text: str, casefold: bool = True) -> str:
    """The cache's form of a text query: whitespace runs collapsed, stripped, lower-cased if ``casefold``."""
    collapsed = " ".join(text.split())
    return collapsed.lower() if casefold else collapsed


def image_digest(image: bytes) -> str:
    """The sha256 of an encoded query image (hex)."""
    return hashlib.sha256(image).hexdigest()


class QueryCache:
    """LRU + TTL of query embeddings for one bundle at a time (``size`` 0: off)."""

    def __init__(
        self,
        size: int,
        ttl_s: float = 0.0,
        casefold: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if size < 0 or ttl_s < 0:
            raise ValueError(f"query cache size and ttl must be >= 0, got {size} and {ttl_s}")
        self.size = size
        self.casefold = casefold
        self._entries: LRUCache[Key, MemberVectors] = (
            TTLCache(maxsize=max(size, 1), ttl=ttl_s, timer=clock)
            if ttl_s > 0
            else LRUCache(maxsize=max(size, 1))
        )
        self._bundle = ""
        self._target: str | None = None

    @property
    def enabled(self) -> bool:
        """False when the configured size is 0."""
        return self.size > 0

    def __len__(self) -> int:
        return len(self._entries)

    def use_bundle(self, bundle: str) -> None:
        """Scope the cache to ``bundle`` ("name-version"); entries of another bundle are dropped."""
        if bundle != self._bundle:
            if self._entries:
                QUERY_CACHE_DROPS.labels("bundle").inc()
            self._entries.clear()
            self._bundle = bundle
            self._target = None

    def note_target(self, target: str) -> None:
        """The collection the catalog alias resolved to; a different one than before drops the cache."""
        if not target:
            return
        if self._target is not None and target != self._target:
            if self._entries:
                QUERY_CACHE_DROPS.labels("alias").inc()
            self._entries.clear()
        self._target = target

    def text_key(self, bundle: str, text: str, members: Sequence[str]) -> Key:
        """The key of a text query embedded by ``bundle`` for ``members``."""
        return (bundle, "text", normalize_text(text, self.casefold), tuple(members))

    def image_key(self, bundle: str, image: bytes, members: Sequence[str]) -> Key:
        """The key of an image query (by content hash) embedded by ``bundle`` for ``members``."""
        return (bundle, "image", image_digest(image), tuple(members))

    def get(self, key: Key) -> MemberVectors | None:
        """The cached vectors of ``key`` (counted as a hit or a miss), or None.

        A key of another bundle than the one the cache is scoped to is always a miss.
        """
        if not self.enabled:
            return None
        found = self._entries.get(key) if key[0] == self._bundle else None
        (QUERY_CACHE_HITS if found is not None else QUERY_CACHE_MISSES).labels(key[1]).inc()
        return found

    def put(self, key: Key, vectors: MemberVectors) -> None:
        """Keep read-only copies of ``vectors`` under ``key`` (only for the current bundle)."""
        if not self.enabled or key[0] != self._bundle:
            return
        kept = {}
        for member, vector in vectors.items():
            frozen = np.array(vector, dtype=np.float32)
            frozen.setflags(write=False)
            kept[member] = frozen
        self._entries[key] = kept


__all__ = [
    "QUERY_CACHE_DROPS",
    "QUERY_CACHE_HITS",
    "QUERY_CACHE_MISSES",
    "QueryCache",
    "image_digest",
    "normalize_text",
]
