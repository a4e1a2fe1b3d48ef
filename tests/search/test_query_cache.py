"""The query embedding cache: hits on repeats, bundle and alias invalidation, TTL, size, metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pytest
from prometheus_client import REGISTRY

from services.common.config import SearchConfig, StoreConfig, load_config
from services.common.embed_client import MemberVectors
from services.search.core import SearchCore
from services.search.model import SearchOptions, SearchQuery
from services.search.query_cache import QueryCache, normalize_text
from services.storage.factory import open_store
from services.storage.port import VectorStore
from tests.support.search import (
    ALIAS,
    COLLECTION,
    INDEXES,
    MEMBER_DIMS,
    SyntheticCatalog,
    SyntheticEmbedder,
    image_of,
    search_bundle,
)

CFG = SearchConfig(default_top_k=5, min_candidates=30)
CATALOG = SyntheticCatalog()
MEMBERS = ("m1", "m2", "m3")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recording(SyntheticEmbedder):
    """The synthetic embedder, counting its calls; ``answer`` swaps every text for another one."""

    def __init__(self, catalog: SyntheticCatalog, answer: str = "") -> None:
        super().__init__(catalog)
        self.texts: list[str] = []
        self.images = 0
        self.answer = answer

    async def embed_texts(
        self, texts: Sequence[str], members: Sequence[str] | None = None, timeout: float | None = None
    ) -> list[MemberVectors]:
        self.texts += texts
        return await super().embed_texts([self.answer or t for t in texts], members, timeout)

    async def embed_images(
        self, images: Sequence[bytes], members: Sequence[str] | None = None, timeout: float | None = None
    ) -> list[MemberVectors]:
        self.images += len(images)
        return await super().embed_images(images, members, timeout)


@pytest.fixture()
def store(tmp_path) -> Iterator[VectorStore]:
    s = open_store(StoreConfig(backend="edge", path=str(tmp_path)))
    CATALOG.load(s)
    yield s
    s.close()


def core_of(store, embedder, cache: QueryCache | None = None, version: str = "1") -> SearchCore:
    bundle = dataclasses.replace(search_bundle(), version=version)
    return SearchCore(CFG, store, bundle, embedder, ALIAS, cache=cache)


async def ids(core: SearchCore, text: str = "", image: bytes = b"") -> list[str]:
    result = await core.search(SearchQuery(text=text, image=image, options=SearchOptions(top_k=5)))
    return [h.id for h in result.hits]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def vectors(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {m: rng.normal(size=4).astype(np.float32) for m in MEMBERS}


def test_normalized_text_collapses_whitespace_and_case():
    assert normalize_text("  Black   T-Shirt\t") == "black t-shirt"
    assert normalize_text("Black  T-Shirt", casefold=False) == "Black T-Shirt"


async def test_repeated_text_query_is_served_from_the_cache(store):
    embedder = Recording(CATALOG)
    core = core_of(store, embedder)
    hits, misses = (metric(f"vitrine_search_query_cache_{k}_total", kind="text") for k in ("hits", "misses"))
    first = await ids(core, "red dress")
    again = await ids(core, "  Red   DRESS ")
    assert first == again and first
    assert embedder.texts == ["red dress"]
    assert metric("vitrine_search_query_cache_hits_total", kind="text") == hits + 1
    assert metric("vitrine_search_query_cache_misses_total", kind="text") == misses + 1
    await ids(core, "black shoe")
    assert embedder.texts == ["red dress", "black shoe"]


async def test_image_queries_are_cached_by_content(store):
    embedder = Recording(CATALOG)
    core = core_of(store, embedder)
    hits = metric("vitrine_search_query_cache_hits_total", kind="image")
    first = await ids(core, image=image_of("shoe-black-2"))
    assert await ids(core, image=bytes(image_of("shoe-black-2"))) == first
    assert embedder.images == 1
    assert metric("vitrine_search_query_cache_hits_total", kind="image") == hits + 1
    await ids(core, image=image_of("dress-red-1"))
    assert embedder.images == 2


async def test_a_new_bundle_never_gets_the_old_bundles_vectors(store):
    cache = QueryCache(100)
    old = core_of(store, Recording(CATALOG), cache, version="1")
    assert await ids(old, "red dress") == await ids(old, "red dress")
    drops = metric("vitrine_search_query_cache_drops_total", reason="bundle")
    # the new bundle embeds "red dress" like "black shoe": its answer must be its own
    new_embedder = Recording(CATALOG, answer="black shoe")
    new = core_of(store, new_embedder, cache, version="2")
    assert metric("vitrine_search_query_cache_drops_total", reason="bundle") == drops + 1
    shoes = await ids(core_of(store, Recording(CATALOG), QueryCache(0)), "black shoe")
    assert await ids(new, "red dress") == shoes
    assert new_embedder.texts == ["red dress"]
    # the old core now misses (its keys name the old bundle) instead of reading version 2's vectors
    old_embedder = old.embedder
    assert await ids(old, "red dress") != shoes
    assert old_embedder.texts == ["red dress", "red dress"]


async def test_an_alias_swap_drops_the_cache(store):
    embedder = Recording(CATALOG)
    core = core_of(store, embedder)
    await ids(core, "red dress")
    await ids(core, "red dress")
    assert embedder.texts == ["red dress"]
    rebuilt = COLLECTION + "-rebuilt"
    store.ensure_collection(rebuilt, MEMBER_DIMS, INDEXES)
    store.upsert(rebuilt, CATALOG.points())
    store.swap_alias(ALIAS, rebuilt)
    drops = metric("vitrine_search_query_cache_drops_total", reason="alias")
    await ids(core, "red dress")  # the store reports the new target: the cache is dropped
    assert metric("vitrine_search_query_cache_drops_total", reason="alias") == drops + 1
    await ids(core, "red dress")
    assert embedder.texts == ["red dress", "red dress"]


def test_entries_expire_after_the_ttl():
    clock = Clock()
    cache = QueryCache(10, ttl_s=60.0, clock=clock)
    cache.use_bundle("b-1")
    key = cache.text_key("b-1", "red dress", MEMBERS)
    cache.put(key, vectors(1))
    clock.now = 59.0
    assert cache.get(key) is not None
    clock.now = 60.5
    assert cache.get(key) is None


def test_the_size_limit_evicts_the_least_recently_used():
    cache = QueryCache(2)
    cache.use_bundle("b-1")
    text, image, other = (
        cache.text_key("b-1", "red dress", MEMBERS),
        cache.image_key("b-1", b"jpeg bytes", MEMBERS),
        cache.text_key("b-1", "black shoe", MEMBERS),
    )
    cache.put(text, vectors(1))
    cache.put(image, vectors(2))
    assert cache.get(text) is not None  # text is now the most recent
    cache.put(other, vectors(3))
    assert len(cache) == 2
    assert cache.get(image) is None
    assert cache.get(text) is not None and cache.get(other) is not None


def test_cached_vectors_are_read_only_copies():
    cache = QueryCache(4)
    cache.use_bundle("b-1")
    key = cache.text_key("b-1", "red dress", MEMBERS)
    original = vectors(1)
    cache.put(key, original)
    original["m1"][0] = 99.0
    kept: Mapping[str, np.ndarray] = cache.get(key) or {}
    assert kept["m1"][0] != 99.0
    with pytest.raises(ValueError):
        kept["m1"][0] = 1.0


async def test_size_zero_turns_the_cache_off(store):
    embedder = Recording(CATALOG)
    core = core_of(store, embedder, QueryCache(0))
    await ids(core, "red dress")
    await ids(core, "red dress")
    assert embedder.texts == ["red dress", "red dress"]


def test_cache_settings_come_from_config_and_env(store):
    env = {"VITRINE_SEARCH_QUERY_CACHE_SIZE": "7", "VITRINE_SEARCH_QUERY_CACHE_TTL_S": "2.5"}
    cfg = load_config(env=env).search
    assert (cfg.query_cache_size, cfg.query_cache_ttl_s, cfg.query_cache_casefold) == (7, 2.5, True)
    core = SearchCore(cfg, store, search_bundle(), Recording(CATALOG), ALIAS)
    assert core.cache.size == 7 and core.cache.enabled
    for bad in ({"query_cache_size": -1}, {"query_cache_ttl_s": -1.0}):
        with pytest.raises(ValueError, match=f"search.{next(iter(bad))}"):
            SearchCore(dataclasses.replace(cfg, **bad), store, search_bundle(), Recording(CATALOG), ALIAS)
