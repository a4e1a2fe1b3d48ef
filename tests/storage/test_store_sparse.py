"""Sparse (lexical) vectors on both adapters: the same BM25 scores, equal to a brute-force BM25."""

from __future__ import annotations

import math

import numpy as np
import pytest

from domain.lexical import LEXICAL_MEMBER, LexicalSpec, SparseVector, idf, query_vector, tokens
from services.common.config import StoreConfig
from services.storage.factory import open_store
from services.storage.port import MemberQuery, Point, StoreError

DENSE = {"m1": 8}
NAMES = [
    "Nike Men Blue T-shirt",
    "Puma Women Black Running Shoes",
    "Fastrack Men Black Watch",
    "Nike Women Pink Tshirts",
    "Titan Men Silver Watch",
    "Puma Men Grey Track Pants",
    "Incinerate Puma Running Shoes",
    "Levis Men Blue Jeans",
]
SPEC = LexicalSpec(avg_len=5.0, fields=())


def points() -> list[Point]:
    rng = np.random.default_rng(0)
    return [
        Point(
            id=f"p{i}",
            vectors={
                "m1": rng.standard_normal(8).astype(np.float32),
                LEXICAL_MEMBER: SPEC.document(name, {}),
            },
            payload={"text": name},
        )
        for i, name in enumerate(NAMES)
    ]


def brute_force_bm25(query: str) -> dict[str, float]:
    """BM25 of every name that shares a term with ``query`` (the formula of domain.lexical)."""
    docs = [tokens(n) for n in NAMES]
    scores = {}
    for i, terms in enumerate(docs):
        score = 0.0
        for term in set(tokens(query)):
            tf = terms.count(term)
            if tf:
                containing = sum(term in d for d in docs)
                norm = SPEC.k1 * (1 - SPEC.b + SPEC.b * len(terms) / SPEC.avg_len)
                score += idf(len(docs), containing) * tf * (SPEC.k1 + 1) / (tf + norm)
        if score > 0:
            scores[f"p{i}"] = score
    return scores


@pytest.fixture
def both(tmp_path):
    stores = [
        open_store(StoreConfig(backend="edge", path=str(tmp_path / "edge"))),
        open_store(StoreConfig(backend="qdrant", url=":memory:")),
    ]
    for store in stores:
        store.ensure_collection("c", DENSE, ["text"], sparse_vectors=[LEXICAL_MEMBER])
        store.upsert("c", points())
    yield stores
    for store in stores:
        store.close()


@pytest.mark.parametrize("query", ["nike t-shirts", "PUMA running shoe", "black watches", "incinerate"])
def test_sparse_query_is_bm25_on_both_adapters(both, query):
    expected = brute_force_bm25(query)
    assert expected
    for store in both:
        hits = store.query("c", [MemberQuery(LEXICAL_MEMBER, query_vector(query), 10)])[LEXICAL_MEMBER]
        assert {h.id for h in hits} == set(expected)
        for hit in hits:
            assert math.isclose(hit.score, expected[hit.id], rel_tol=1e-4)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_dense_and_sparse_in_one_call_and_store_rrf(both):
    rng = np.random.default_rng(1)
    queries = [
        MemberQuery("m1", rng.standard_normal(8).tolist(), 5),
        MemberQuery(LEXICAL_MEMBER, query_vector("puma shoes"), 5),
    ]
    edge, local = (store.query("c", queries) for store in both)
    for member in ("m1", LEXICAL_MEMBER):
        assert [h.id for h in edge[member]] == [h.id for h in local[member]]
    fused = [store.query_rrf("c", queries, k=60, limit=5) for store in both]
    # exact score ties come in no defined order: compare (score, id) sorted
    edge_rrf, local_rrf = (sorted((round(h.score, 6), h.id) for h in hits) for hits in fused)
    assert edge_rrf == local_rrf and len(edge_rrf) == 5


def test_words_the_catalog_lacks_find_nothing(both):
    for store in both:
        hits = store.query("c", [MemberQuery(LEXICAL_MEMBER, query_vector("garden hose"), 10)])
        assert hits[LEXICAL_MEMBER] == []


def test_sparse_vectors_read_back_and_spec_checked(both):
    expected = SPEC.document(NAMES[2], {})
    for store in both:
        [point] = store.retrieve("c", ["p2"], with_vectors=True)
        assert point.vectors[LEXICAL_MEMBER] == SparseVector(
            expected.indices, tuple(pytest.approx(v, rel=1e-6) for v in expected.values)
        )
        with pytest.raises(ValueError, match="needs a sparse vector"):
            store.query("c", [MemberQuery(LEXICAL_MEMBER, [0.1] * 8, 3)])
        with pytest.raises(ValueError, match="needs a dense vector"):
            store.upsert("c", [Point("x", {"m1": SparseVector((1,), (1.0,))}, {})])
        with pytest.raises(ValueError, match="distinct"):
            store.upsert("c", [Point("x", {LEXICAL_MEMBER: SparseVector((1, 1), (1.0, 2.0))}, {})])
        with pytest.raises(StoreError, match="has vectors"):
            store.ensure_collection("c", DENSE)  # the sparse vector is part of the spec
        store.ensure_collection("c", DENSE, sparse_vectors=[LEXICAL_MEMBER])  # idempotent
        with pytest.raises(ValueError, match="both a dense and a sparse"):
            store.ensure_collection("d", DENSE, sparse_vectors=["m1"])
