"""Synthetic catalog vectors for the storage and search benchmarks: the same data for every backend.

Each member has its own random unit centroids; an item picks one centroid per member (its cluster
id under that member) and its vector is ``normalize(centroid + noise)`` with noise as large as
the centroid (cosine to its centroid about 0.7), so the data is clustered like real embeddings
rather than uniform on the sphere. Payloads carry the filterable attributes ingest stores
(``gender``, ``articleType``, ``baseColour``), two fields of a shop's own schema (``brand`` keyword,
``price`` float; drawn from a second generator, so the other draws stay as they were) and
``cluster.<member>``. Queries are noisy copies of stored items, so every query has true neighbours.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.common import summary_ms
from domain.schema import FieldIndex
from services.common.config import StoreConfig
from services.storage.edge import EdgeStore
from services.storage.factory import open_store
from services.storage.port import Filters, MemberQuery, Point, VectorStore

MEMBERS = ("m1", "m2", "m3")
GENDERS = ("Men", "Women", "Boys", "Girls", "Unisex")
ARTICLE_TYPES = (
    "Tshirts", "Shirts", "Casual Shoes", "Watches", "Sports Shoes", "Kurtas", "Tops", "Handbags",
    "Heels", "Sunglasses", "Wallets", "Flip Flops", "Sandals", "Briefs", "Belts", "Backpacks",
    "Socks", "Formal Shoes", "Perfume", "Jeans",
)  # fmt: skip
COLOURS = ("Black", "White", "Blue", "Brown", "Grey", "Red", "Green", "Pink", "Navy Blue", "Purple")
BRANDS = ("Nike", "Adidas", "Puma", "Reebok", "Zara", "Levis", "Fossil", "Titan")
PRICE_RANGE = (5.0, 200.0)  # uniform, two decimals
CLUSTERS = 32
UPSERT_BATCH = 256
QUERY_LIMIT = 100  # what search asks each member for a first page (search.min_candidates)
BENCH_FILTER: Filters = {"gender": ("Women",), "articleType": ("Tshirts", "Tops", "Kurtas")}
PLAIN_INDEXES: dict[str, str | FieldIndex] = {
    "gender": "keyword",
    "articleType": "keyword",
    "baseColour": "keyword",
    "brand": "keyword",
    "price": "float",
    **{f"cluster.{m}": "integer" for m in MEMBERS},
}
# What a shop's schema declares for its own filter fields: brand as tenant, price as principal.
PAYLOAD_INDEXES = {
    **PLAIN_INDEXES,
    "brand": FieldIndex("keyword", "tenant"),
    "price": FieldIndex("float", "principal"),
}


def edge_store(root: Path) -> VectorStore:
    """An Edge store in ``root`` (the default backend, as the services open it)."""
    return open_store(StoreConfig(backend="edge", path=str(root)))


def local_store() -> VectorStore:
    """qdrant-client local mode in memory (its fastest form; ``path:`` adds sqlite writes)."""
    return open_store(StoreConfig(backend="qdrant", url=":memory:"))


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Dataset:
    """``n`` items: unit vectors per member (``n x dim`` float32), cluster ids and attributes."""

    n: int
    dim: int
    vectors: Mapping[str, np.ndarray]
    clusters: Mapping[str, np.ndarray]
    attributes: np.ndarray  # n x 3 indices into GENDERS, ARTICLE_TYPES, COLOURS
    seed: int
    brands: np.ndarray  # n indices into BRANDS
    prices: np.ndarray  # n floats within PRICE_RANGE

    @property
    def dims(self) -> dict[str, int]:
        """``{member: dim}`` for ``ensure_collection``."""
        return dict.fromkeys(self.vectors, self.dim)

    def payload(self, i: int) -> dict[str, Any]:
        """What ingest would store for item ``i`` (less the product text)."""
        gender, article, colour = self.attributes[i]
        return {
            "gender": GENDERS[gender],
            "articleType": ARTICLE_TYPES[article],
            "baseColour": COLOURS[colour],
            "brand": BRANDS[self.brands[i]],
            "price": float(self.prices[i]),
            "cluster": {m: int(c[i]) for m, c in self.clusters.items()},
            "bundle_version": "bench",
        }

    def points(self, start: int, stop: int) -> list[Point]:
        """Points ``start..stop-1`` (product ids are the item numbers)."""
        return [
            Point(str(i), {m: v[i] for m, v in self.vectors.items()}, self.payload(i))
            for i in range(start, min(stop, self.n))
        ]

    def mask(self, filters: Filters) -> np.ndarray:
        """Which items pass keyword ``filters`` on gender, articleType and baseColour."""
        names = {"gender": GENDERS, "articleType": ARTICLE_TYPES, "baseColour": COLOURS}
        keep = np.ones(self.n, dtype=bool)
        for column, field in enumerate(("gender", "articleType", "baseColour")):
            if field in filters:
                wanted = [names[field].index(str(v)) for v in filters[field]]
                keep &= np.isin(self.attributes[:, column], wanted)
        return keep

    def matches(self, filters: Filters) -> int:
        """How many items pass ``filters`` (selectivity of the filtered query)."""
        return int(self.mask(filters).sum())

    def shop_mask(self, brands: Sequence[str], low: float, high: float) -> np.ndarray:
        """Which items have one of ``brands`` and a price within ``[low, high]``."""
        keep = np.isin(self.brands, [BRANDS.index(b) for b in brands])
        return keep & (self.prices >= low) & (self.prices <= high)

    def shop_matches(self, brands: Sequence[str], low: float, high: float) -> int:
        """How many items have one of ``brands`` and a price within ``[low, high]``."""
        return int(self.shop_mask(brands, low, high).sum())

    def queries(self, count: int, seed: int = 1) -> list[dict[str, np.ndarray]]:
        """``count`` queries ``{member: unit vector}``: noisy copies of random stored items."""
        rng = np.random.default_rng(self.seed * 1000 + seed)
        picks = rng.integers(0, self.n, size=count)
        out: list[dict[str, np.ndarray]] = [{} for _ in range(count)]
        for member, matrix in self.vectors.items():
            noisy = matrix[picks] + rng.normal(scale=0.5 / np.sqrt(self.dim), size=(count, self.dim))
            for row, vector in zip(out, _unit_rows(noisy), strict=True):
                row[member] = vector
        return out


def make_dataset(n: int, dim: int, members: Sequence[str] = MEMBERS, seed: int = 0) -> Dataset:
    """A reproducible clustered dataset of ``n`` items x ``len(members)`` vectors of ``dim``."""
    rng = np.random.default_rng(seed)
    vectors: dict[str, np.ndarray] = {}
    clusters: dict[str, np.ndarray] = {}
    for member in members:
        centroids = _unit_rows(rng.normal(size=(CLUSTERS, dim)))
        ids = rng.integers(0, CLUSTERS, size=n)
        noise = rng.normal(scale=1.0 / np.sqrt(dim), size=(n, dim)).astype(np.float32)
        vectors[member] = _unit_rows(centroids[ids] + noise)
        clusters[member] = ids
    attributes = np.stack(
        [rng.integers(0, len(choices), size=n) for choices in (GENDERS, ARTICLE_TYPES, COLOURS)], axis=1
    )
    shop = np.random.default_rng(seed + 10_000)
    brands = shop.integers(0, len(BRANDS), size=n)
    prices = np.round(shop.uniform(*PRICE_RANGE, size=n), 2)
    return Dataset(n, dim, vectors, clusters, attributes, seed, brands, prices)


def load(
    store: VectorStore,
    collection: str,
    data: Dataset,
    label: str = "",
    indexes: Mapping[str, str | FieldIndex] = PAYLOAD_INDEXES,
) -> float:
    """Create ``collection`` with ``indexes`` and upsert every item in batches of UPSERT_BATCH;
    returns points/s."""
    store.ensure_collection(collection, data.dims, indexes)
    elapsed = 0.0
    batches = range(0, data.n, UPSERT_BATCH)
    for start in tqdm(batches, desc=f"upsert {label or collection}", unit="batch", leave=False):
        points = data.points(start, start + UPSERT_BATCH)  # built outside the timed call
        begin = time.perf_counter()
        store.upsert(collection, points)
        elapsed += time.perf_counter() - begin
    store.flush()
    return data.n / elapsed


def member_queries(query: Mapping[str, np.ndarray], limit: int = QUERY_LIMIT) -> list[MemberQuery]:
    """One MemberQuery per member of ``query``."""
    return [MemberQuery(member, vector, limit) for member, vector in query.items()]


def interleaved_latency(
    stores: Mapping[str, VectorStore],
    collection: str,
    queries: Sequence[Mapping[str, np.ndarray]],
    filters: Filters | None,
) -> dict[str, dict[str, float]]:
    """p50/p90/p99 of ``store.query`` (one MemberQuery per member) for each store, per query in turn.

    Each query runs on every store before the next one, so load on the machine hits all alike.
    The first query is a warm-up and is not counted.
    """
    times: dict[str, list[float]] = {name: [] for name in stores}
    for store in stores.values():  # warm-up
        store.query(collection, member_queries(queries[0]), filters)
    for query in tqdm(queries, desc="queries", unit="q", leave=False):
        for name, store in stores.items():
            begin = time.perf_counter()
            store.query(collection, member_queries(query), filters)
            times[name].append(time.perf_counter() - begin)
    return {name: summary_ms(values) for name, values in times.items()}


def recall_at(
    store: VectorStore,
    collection: str,
    data: Dataset,
    queries: Sequence[Mapping[str, np.ndarray]],
    k: int = 10,
) -> float:
    """Mean recall@k of the store's top k against exact cosine search in numpy, over members."""
    found, total = 0, 0
    for query in queries:
        hits = store.query(collection, member_queries(query, k))
        for member, vector in query.items():
            exact = np.argpartition(-(data.vectors[member] @ vector), k)[:k]
            found += len({str(i) for i in exact} & {h.id for h in hits[member]})
            total += k
    return found / total


def filtered_recall_at(
    store: VectorStore,
    collection: str,
    data: Dataset,
    queries: Sequence[Mapping[str, np.ndarray]],
    filters: Filters,
    passing: np.ndarray,
    k: int = 10,
) -> float:
    """Mean recall@k of the store's filtered top k against exact search over the ``passing`` items."""
    allowed = np.flatnonzero(passing)
    found, total = 0, 0
    for query in queries:
        hits = store.query(collection, member_queries(query, k), filters)
        for member, vector in query.items():
            scores = data.vectors[member][allowed] @ vector
            exact = allowed[np.argsort(-scores)[:k]]
            found += len({str(i) for i in exact} & {h.id for h in hits[member]})
            total += min(k, len(allowed))
    return found / total


def build_index(store: VectorStore, collection: str) -> dict[str, float]:
    """Time ``store.optimize`` (Edge: the HNSW build); with Edge, also how many vectors it indexed."""
    print(f"optimize() {collection} (HNSW build; this process is blocked meanwhile)...", flush=True)
    begin = time.perf_counter()
    store.optimize(collection)
    seconds = time.perf_counter() - begin
    out = {"optimize_s": round(seconds, 1)}
    inner = getattr(store, "inner", store)  # open_store wraps adapters in MeteredStore
    if isinstance(inner, EdgeStore):
        # EdgeStore has no public shard info; the counter tells whether an index was really built.
        _, shard = inner._shard(collection)
        out["indexed_vectors"] = int(shard.info().indexed_vectors_count)
    return out


def index_label(build: Mapping[str, float]) -> str:
    """How the Edge figures searched: with the HNSW index, or exactly (nothing was indexed)."""
    return "Edge HNSW" if build.get("indexed_vectors", 0) > 0 else "Edge, exact: nothing indexed"
