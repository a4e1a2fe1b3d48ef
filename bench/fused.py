"""Fused search latency through the real :class:`SearchCore`, with ready query vectors (no embedding).

``SearchCore.search_vectors`` runs the whole query path after embedding: alias lookup, one store
query per member in its own thread, fusion, re-ranking and the page of attributes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence

import numpy as np
from tqdm import tqdm

from bench.common import summary_ms
from domain.bundle import Bundle, FusionSpec, MemberSpec
from domain.schema import FASHION_SCHEMA, CatalogSchema
from services.common.config import SearchConfig
from services.common.embed_client import MemberVectors
from services.search.core import SearchCore
from services.search.model import SearchOptions, SimilarQuery
from services.storage.filters import WireCondition
from services.storage.port import VectorStore

MEMBER_WEIGHTS = {"m1": 1.0, "m2": 3.0, "m3": 1.0}  # as in the default bundle (weighted_rrf)
VARIANTS: dict[str, SearchOptions] = {
    "rrf": SearchOptions(top_k=10, fusion="rrf"),  # fused by the store (search.store_rrf)
    "rrf+explain": SearchOptions(top_k=10, fusion="rrf", explain=True),  # fused here, with evidence
    "weighted_rrf": SearchOptions(top_k=10, fusion="weighted_rrf"),
    "combsum": SearchOptions(top_k=10, fusion="combsum"),
    "rrf+cluster_rerank": SearchOptions(top_k=10, fusion="rrf", cluster_rerank=True),
    "rrf+filter": SearchOptions(top_k=10, fusion="rrf", filters={"gender": "Women"}),
}

# The Fashion fields plus a shop's own (bench/vectors.py stores brand and price with their indexes).
BENCH_SCHEMA = CatalogSchema(
    {**FASHION_SCHEMA.fields, "brand": "keyword", "price": "float"},
    source="bench",
    layouts={"brand": "tenant", "price": "principal"},
)
SHOP_BRANDS = ("Nike", "Adidas")
SHOP_PRICE = (20.0, 80.0)
# Unfiltered vs a keyword filter vs keyword + price range, run in turn on every query (paired_latency).
SHOP_FILTERS: dict[str, SearchOptions] = {
    "unfiltered": SearchOptions(top_k=10, fusion="rrf"),
    "brand": SearchOptions(top_k=10, fusion="rrf", filters={"brand": "|".join(SHOP_BRANDS)}),
    "brand+price": SearchOptions(
        top_k=10,
        fusion="rrf",
        filters={"brand": "|".join(SHOP_BRANDS)},
        conditions=[WireCondition("price", gte=SHOP_PRICE[0], lte=SHOP_PRICE[1])],
    ),
}


class VectorsOnly:
    """The embedder slot of a core that only ever receives query vectors: embedding is refused."""

    async def embed_texts(
        self, texts: Sequence[str], members: Sequence[str] | None = None, timeout: float | None = None
    ) -> list[MemberVectors]:
        """Refuse: this benchmark measures search after embedding."""
        raise RuntimeError("the vector benchmark passes query vectors; it has no embedder")

    async def embed_images(
        self, images: Sequence[bytes], members: Sequence[str] | None = None, timeout: float | None = None
    ) -> list[MemberVectors]:
        """Refuse: this benchmark measures search after embedding."""
        raise RuntimeError("the vector benchmark passes query vectors; it has no embedder")


def vector_bundle(dims: Mapping[str, int]) -> Bundle:
    """A bundle description for stored synthetic vectors (names, dims, weights; no model files)."""
    members = tuple(
        MemberSpec(name=name, arch="synthetic", dim=dim, weight=MEMBER_WEIGHTS.get(name, 1.0))
        for name, dim in dims.items()
    )
    return Bundle(name="bench", version="1", members=members, fusion=FusionSpec("rrf", 60))


def search_core(
    store: VectorStore, collection: str, dims: Mapping[str, int], cfg: SearchConfig | None = None
) -> SearchCore:
    """A search core over ``collection`` with ``cfg`` (default: the default search settings)."""
    return SearchCore(
        cfg or SearchConfig(), store, vector_bundle(dims), VectorsOnly(), collection, schema=BENCH_SCHEMA
    )


async def _latencies(
    cores: Mapping[str, SearchCore], queries: Sequence[Mapping[str, np.ndarray]], options: SearchOptions
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in cores}
    for core in cores.values():  # warm-up
        await core.search_vectors(queries[0], options)
    for query in tqdm(queries, desc=options.fusion, unit="q", leave=False):
        for name, core in cores.items():
            begin = time.perf_counter()
            result = await core.search_vectors(query, options)
            times[name].append(time.perf_counter() - begin)
            if result.partial or len(result.hits) < 1:
                raise RuntimeError(f"{name}: partial or empty result, the figure would be wrong")
    return times


def fused_latency(
    cores: Mapping[str, SearchCore], queries: Sequence[Mapping[str, np.ndarray]], options: SearchOptions
) -> dict[str, dict[str, float]]:
    """p50/p90/p99 of ``search_vectors`` per core; each query runs on every core before the next."""
    times = asyncio.run(_latencies(cores, queries, options))
    return {name: summary_ms(values) for name, values in times.items()}


async def _paired(
    core: SearchCore, queries: Sequence[Mapping[str, np.ndarray]], variants: Mapping[str, SearchOptions]
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for options in variants.values():  # warm-up
        await core.search_vectors(queries[0], options)
    for query in tqdm(queries, desc="paired", unit="q", leave=False):
        for name, options in variants.items():
            begin = time.perf_counter()
            result = await core.search_vectors(query, options)
            times[name].append(time.perf_counter() - begin)
            if result.partial or len(result.hits) < 1:
                raise RuntimeError(f"{name}: partial or empty result, the figure would be wrong")
    return times


def paired_latency(
    core: SearchCore, queries: Sequence[Mapping[str, np.ndarray]], variants: Mapping[str, SearchOptions]
) -> dict[str, dict[str, float]]:
    """p50/p90/p99 of ``search_vectors`` per variant on one core; each query runs every variant in turn."""
    times = asyncio.run(_paired(core, queries, variants))
    return {name: summary_ms(values) for name, values in times.items()}


async def _similar(cores: Mapping[str, SearchCore], ids: Sequence[str], options: SearchOptions):
    times: dict[str, list[float]] = {name: [] for name in cores}
    for core in cores.values():  # warm-up
        await core.more_like_this(SimilarQuery(ids[0], options=options))
    for product_id in tqdm(ids, desc="more like this", unit="q", leave=False):
        for name, core in cores.items():
            begin = time.perf_counter()
            result = await core.more_like_this(SimilarQuery(product_id, options=options))
            times[name].append(time.perf_counter() - begin)
            if result.partial or len(result.hits) < 1:
                raise RuntimeError(f"{name}: partial or empty result, the figure would be wrong")
    return times


def expansion_latency(
    store: VectorStore, collection: str, dims: Mapping[str, int], ids: Sequence[str]
) -> dict[str, dict[str, float]]:
    """MoreLikeThis (an image query from stored vectors) p50/p90/p99 with image query expansion off
    and at its default (``search.image_expansion``), the two run in turn on every item."""
    on = SearchConfig()
    cores = {
        "expansion off": search_core(store, collection, dims, dataclasses.replace(on, image_expansion=0)),
        f"expansion {on.image_expansion}": search_core(store, collection, dims, on),
    }
    options = SearchOptions(top_k=10, fusion="weighted_rrf")  # the default bundle's fusion
    times = asyncio.run(_similar(cores, ids, options))
    return {name: summary_ms(values) for name, values in times.items()}
