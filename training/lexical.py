"""The lexical member offline: BM25 over a gallery, scored exactly as the store scores it.

Documents are the vectors ingest writes (:meth:`domain.lexical.LexicalSpec.document` of the product
name and its keyword attributes); each term column is multiplied by the IDF the store's modifier
applies, computed over the gallery. A query's score is the sum of its distinct terms' columns, so
the ranking is the one ``single:lexical`` serves over a collection holding that gallery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from domain.catalog import Product
from domain.lexical import LEXICAL_MEMBER, LexicalSpec, average_length, document_text, idf, query_vector
from training.retrieval import QuerySet

Ranking = tuple[list[np.ndarray], list[np.ndarray]]
"""Per query: gallery rows and BM25 scores, best first, only rows sharing a term (ragged)."""


def product_text(product: Product) -> str:
    """What ingest stores as a product's text (a Fashion product's display name)."""
    return product.text


@dataclass
class LexicalIndex:
    """IDF-weighted BM25 document matrix (rows: gallery items, columns: terms)."""

    matrix: sparse.csc_matrix
    columns: dict[int, int]  # term index -> column

    def rank(self, texts: Sequence[str], depth: int) -> Ranking:
        """Top-``depth`` rows with a positive score per query text."""
        rows, scores = [], []
        for text in texts:
            cols = [self.columns[i] for i in query_vector(text).indices if i in self.columns]
            if not cols:
                rows.append(np.zeros(0, np.int64))
                scores.append(np.zeros(0, np.float32))
                continue
            total = np.asarray(self.matrix[:, cols].sum(axis=1)).ravel()
            hit = np.flatnonzero(total > 0)
            order = hit[np.lexsort((hit, -total[hit]))][:depth]
            rows.append(order.astype(np.int64))
            scores.append(total[order].astype(np.float32))
        return rows, scores


def fitted_spec(products: Sequence[Product], weight: float = 1.0) -> LexicalSpec:
    """A spec whose ``avg_len`` is the mean document length of ``products``."""
    base = LexicalSpec(weight=weight)
    texts = [document_text(product_text(p), p.attributes, base.fields) for p in products]
    return LexicalSpec(weight=weight, k1=base.k1, b=base.b, avg_len=average_length(texts), fields=base.fields)


def build_index(products: Sequence[Product], spec: LexicalSpec) -> LexicalIndex:
    """The gallery's documents, IDF-weighted over the gallery (``Modifier.IDF``)."""
    columns: dict[int, int] = {}
    data, row_ids, col_ids = [], [], []
    for row, product in enumerate(products):
        vector = spec.document(product_text(product), product.attributes)
        for index, value in zip(vector.indices, vector.values, strict=True):
            col_ids.append(columns.setdefault(index, len(columns)))
            row_ids.append(row)
            data.append(value)
    shape = (len(products), max(1, len(columns)))
    matrix = sparse.csc_matrix((np.asarray(data, np.float64), (row_ids, col_ids)), shape=shape)
    containing = np.diff(matrix.indptr)  # documents per term column
    weights = np.array([idf(len(products), int(n)) for n in containing])
    return LexicalIndex(sparse.csc_matrix(matrix @ sparse.diags(weights)), columns)


def document_terms(products: Sequence[Product], spec: LexicalSpec) -> list[frozenset[str]]:
    """Each product's lexical terms, as search reads them off the stored point (word coverage)."""
    return [spec.document_terms(product_text(p), p.attributes) for p in products]


def rank_lexical(
    query_sets: Sequence[tuple[QuerySet, Sequence[str]]], index: LexicalIndex, depth: int
) -> None:
    """Store the lexical member's rankings in every text query set."""
    for query_set, texts in query_sets:
        if texts:
            query_set.rankings[LEXICAL_MEMBER] = index.rank(texts, depth)


__all__ = ["LexicalIndex", "build_index", "document_terms", "fitted_spec", "product_text", "rank_lexical"]
