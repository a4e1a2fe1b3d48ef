"""Tokenization as shoppers write, and BM25 document/query vectors."""

from __future__ import annotations

import math

import pytest

from domain.lexical import (
    LexicalSpec,
    document_text,
    lexical_spec,
    query_tokens,
    query_vector,
    query_words,
    term_index,
    tokens,
    word_coverage,
)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("T-Shirt", "tshirts"),
        ("t shirt", "TSHIRT"),
        ("watches", "Watch"),
        ("Flip-Flops", "flipflop"),
        ("men's", "Men"),
        ("Top wear", "Topwear"),
    ],
)
def test_spellings_meet_at_a_shared_term(a, b):
    assert set(tokens(a)) & set(tokens(b))


def test_brands_stay_as_written_and_function_words_go():
    assert tokens("Fastrack for the Men")[:2] == ["fastrack", "men"]
    assert tokens("the of and") == []


def test_document_vector_is_saturated_tf_and_query_vector_is_binary():
    spec = LexicalSpec(k1=1.2, b=0.75, avg_len=4.0, fields=("articleType",))
    text = document_text("Puma Puma Shoes", {"articleType": "Sports Shoes", "gender": "Men"}, spec.fields)
    assert text == "Puma Puma Shoes Sports Shoes"
    vector = spec.document("Puma Puma Shoes", {"articleType": "Sports Shoes"}).as_dict()
    length = len(tokens(text))
    norm = 1.2 * (1 - 0.75 + 0.75 * length / 4.0)
    assert math.isclose(vector[term_index("puma")], 2 * 2.2 / (2 + norm))
    assert math.isclose(vector[term_index("sport")], 1 * 2.2 / (1 + norm))
    query = query_vector("puma PUMA shoes")
    assert set(query.values) == {1.0} and term_index("puma") in query.indices
    assert list(query.indices) == sorted(query.indices)


def test_bundle_spec_round_trips_and_checks_values():
    spec = LexicalSpec(weight=3.0, avg_len=9.5)
    assert lexical_spec({"lexical": spec.to_json()}) == spec
    assert lexical_spec({}) is None
    with pytest.raises(ValueError, match="lexical.b"):
        LexicalSpec(b=1.5)


def test_queries_drop_prompt_words_documents_keep_them():
    assert query_words("a photo of T-Shirts") == {"tshirt"}
    assert query_tokens("pictures of red dresses") == ["red", "dress", "reddress"]
    assert "photo" in tokens("Photo Print T-shirt")
    assert query_vector("a photo of images").indices == ()


def test_word_coverage_is_the_share_of_query_words_a_product_has():
    spec = LexicalSpec(fields=("articleType", "baseColour"))
    bag = spec.document_terms("Wildcraft Laptop Bag", {"articleType": "Laptop Bag", "baseColour": "Black"})
    assert word_coverage(query_words("laptop charger"), bag) == 0.5
    assert word_coverage(query_words("black laptop bags"), bag) == 1.0
    assert word_coverage(query_words("garden hose"), bag) == 0.0
    assert word_coverage(frozenset(), bag) == 0.0
