"""A synthetic catalog whose right answers are known, an in-process embedder, and a faulty store.

Every member has its own orthonormal directions for five concepts (article types) and three
colours. An item's vector is ``normalize(concept + 0.6 * colour + small noise)``; the text
"red dress" embeds to ``normalize(dress + 0.6 * red)``, so the red dresses are its nearest items,
then the other dresses. An "image" is ``b"IMG:<id>"`` and embeds to that item's stored vectors.
Clusters: under m1 and m2 the cluster is the concept index; m3 has no centroids (no cluster).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from domain.bundle import Bundle, FusionSpec, MemberSpec
from services.common.config import StoreConfig
from services.common.embed_client import EmbedderUnavailable, EmbedRejected, MemberVectors
from services.storage.factory import open_store
from services.storage.port import Filters, MemberQuery, Point, ScoredPoint, StoreError, VectorStore

MEMBER_DIMS = {"m1": 8, "m2": 12, "m3": 16}
CONCEPTS = ("dress", "shirt", "jeans", "watch", "shoe")
COLOURS = ("red", "blue", "black")
PER_GROUP = 3  # items per (concept, colour)
COLOUR_WEIGHT = 0.6
IMAGE_PREFIX = b"IMG:"
COLLECTION = "catalog__synthetic-1"
ALIAS = "catalog"
INDEXES = {
    "gender": "keyword",
    "articleType": "keyword",
    "baseColour": "keyword",
    "cluster.m1": "integer",
    "cluster.m2": "integer",
}


def search_bundle(default_fusion: str = "rrf") -> Bundle:
    """Three members (m2 weighs double), RRF k=60 by default; no files needed."""
    members = tuple(
        MemberSpec(name=name, arch="synthetic", dim=dim, weight=2.0 if name == "m2" else 1.0)
        for name, dim in MEMBER_DIMS.items()
    )
    return Bundle(name="synthetic", version="1", members=members, fusion=FusionSpec(default_fusion, 60))


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


@dataclass(frozen=True)
class Item:
    """One synthetic product."""

    id: str
    concept: str
    colour: str
    gender: str

    @property
    def group(self) -> tuple[str, str]:
        return (self.concept, self.colour)


class SyntheticCatalog:
    """Items, their member vectors and payloads, and text vectors built from the same directions."""

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.directions: dict[str, dict[str, np.ndarray]] = {}
        for member, dim in MEMBER_DIMS.items():
            basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
            words = (*CONCEPTS, *COLOURS)
            self.directions[member] = {w: basis[:, i] for i, w in enumerate(words)}
        self.items: list[Item] = []
        self.vectors: dict[str, dict[str, np.ndarray]] = {}
        for concept, colour, n in itertools.product(CONCEPTS, COLOURS, range(PER_GROUP)):
            item = Item(f"{concept}-{colour}-{n}", concept, colour, "Women" if n % 2 == 0 else "Men")
            self.items.append(item)
            self.vectors[item.id] = {
                m: _unit(
                    d[concept] + COLOUR_WEIGHT * d[colour] + rng.normal(scale=0.05, size=d[concept].size)
                )
                for m, d in self.directions.items()
            }

    def item(self, product_id: str) -> Item:
        return next(i for i in self.items if i.id == product_id)

    def ids(self, concept: str | None = None, colour: str | None = None) -> set[str]:
        """Ids of the items of a concept and/or colour."""
        return {i.id for i in self.items if (concept in (None, i.concept)) and (colour in (None, i.colour))}

    def payload(self, item: Item) -> dict[str, Any]:
        """What ingest would store: attributes, text, the cluster map, bundle version."""
        return {
            "text": f"{item.colour.title()} {item.concept.title()} {item.id[-1]}",
            "articleType": item.concept.title(),
            "baseColour": item.colour.title(),
            "gender": item.gender,
            "year": 2012,
            "cluster": {"m1": CONCEPTS.index(item.concept), "m2": CONCEPTS.index(item.concept)},
            "bundle_version": "1",
        }

    def points(self) -> list[Point]:
        return [Point(i.id, self.vectors[i.id], self.payload(i)) for i in self.items]

    def text_vectors(self, text: str) -> dict[str, np.ndarray]:
        """Sum of the directions of the known words in ``text`` (concepts 1.0, colours 0.6)."""
        words = text.lower().split()
        out = {}
        for member, d in self.directions.items():
            v = np.zeros(MEMBER_DIMS[member])
            for w in words:
                if w in CONCEPTS:
                    v += d[w]
                elif w in COLOURS:
                    v += COLOUR_WEIGHT * d[w]
            out[member] = _unit(v) if np.linalg.norm(v) > 0 else _unit(np.ones(MEMBER_DIMS[member]))
        return out

    def load(self, store: VectorStore) -> None:
        """Create the collection, upsert every item and point the alias at it."""
        store.ensure_collection(COLLECTION, MEMBER_DIMS, INDEXES)
        store.upsert(COLLECTION, self.points())
        store.swap_alias(ALIAS, COLLECTION)


def synthetic_store(backend: str, tmp_path_factory, catalog: SyntheticCatalog) -> VectorStore:
    """``catalog`` loaded into a fresh store: an Edge shard in a temp dir (``edge``) or
    qdrant-client in memory (``qdrant``)."""
    if backend == "edge":
        cfg = StoreConfig(backend="edge", path=str(tmp_path_factory.mktemp("edge")))
    else:
        cfg = StoreConfig(backend="qdrant", url=":memory:")
    store = open_store(cfg)
    catalog.load(store)
    return store


@dataclass
class SyntheticEmbedder:
    """In-process stand-in for the embedder process: same interface as the gRPC client."""

    catalog: SyntheticCatalog
    delay_s: float = 0.0
    unavailable: bool = False
    timeouts: list[float | None] = field(default_factory=list)

    async def _respond(self, timeout: float | None) -> None:
        self.timeouts.append(timeout)
        if self.unavailable:
            raise EmbedderUnavailable("embedder down (test)")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)

    @staticmethod
    def _select(vectors: Mapping[str, np.ndarray], members: Sequence[str] | None) -> MemberVectors:
        return {m: np.asarray(v, np.float32) for m, v in vectors.items() if not members or m in members}

    async def embed_texts(
        self, texts: Sequence[str], members: Sequence[str] | None = None, timeout: float | None = None
    ) -> list[MemberVectors]:
        await self._respond(timeout)
        return [self._select(self.catalog.text_vectors(t), members) for t in texts]

    async def embed_images(
        self, images: Sequence[bytes], members: Sequence[str] | None = None, timeout: float | None = None
    ) -> list[MemberVectors]:
        await self._respond(timeout)
        out = []
        for i, image in enumerate(images):
            product_id = image[len(IMAGE_PREFIX) :].decode(errors="replace")
            if not image.startswith(IMAGE_PREFIX) or product_id not in self.catalog.vectors:
                raise EmbedRejected(f"images[{i}]: cannot decode image")
            out.append(self._select(self.catalog.vectors[product_id], members))
        return out


def image_of(product_id: str) -> bytes:
    """The synthetic "image" of an item."""
    return IMAGE_PREFIX + product_id.encode()


class FaultyStore:
    """Wraps a real store; member queries of ``failing`` raise, those of ``slow`` sleep first.

    Its sleeps let other threads run, as a remote store's calls do, so callers must not call it inline.
    """

    holds_interpreter = False

    def __init__(
        self, inner: VectorStore, failing: Sequence[str] = (), slow: Mapping[str, float] | None = None
    ):
        self.inner = inner
        self.failing = set(failing)
        self.slow = dict(slow or {})

    def query(
        self,
        collection: str,
        queries: Sequence[MemberQuery],
        filters: Filters | None = None,
        payload_fields: Sequence[str] | None = None,
    ) -> dict[str, list[ScoredPoint]]:
        self._faults(queries)
        return self.inner.query(collection, queries, filters, payload_fields)

    def query_rrf(
        self,
        collection: str,
        queries: Sequence[MemberQuery],
        k: int,
        limit: int,
        filters: Filters | None = None,
    ) -> list[ScoredPoint] | None:
        self._faults(queries)
        return self.inner.query_rrf(collection, queries, k, limit, filters)

    def _faults(self, queries: Sequence[MemberQuery]) -> None:
        for q in queries:
            if q.member in self.failing:
                raise StoreError(f"member {q.member}: shard unavailable (test)")
            if q.member in self.slow:
                time.sleep(self.slow[q.member])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
