"""The lexical ensemble member: BM25 over a product's words, as sparse vectors.

One tokenizer serves ingest (documents), search (queries) and training (evaluation,
calibration), so a word is cut the same way everywhere:

* Unicode NFKC, lower case; an apostrophe or hyphen inside a word is dropped, so "T-Shirt",
  "t-shirts" and "tshirts" meet at ``tshirt`` and "men's" at ``men``; a lone "t" before "shirt"
  ("t shirt") is joined too.
* Words are runs of letters and digits; a few English function words are dropped, and queries
  also drop the words of a prompt template ("a photo of").
* Neighbouring words are also joined into one more term ("top wear" -> ``topwear``).
* Each word is stemmed by the Snowball English stemmer (``snowballstemmer``), so plurals meet
  their singular ("watches" -> ``watch``). Brand names stay as written in the product names
  ("Fastrack", "Puma"), lower-cased and stemmed the same way on both sides.

A term's sparse index is the CRC-32 of its stem (stable across processes and machines).
Documents carry BM25's saturated term frequency ``tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))``;
queries carry 1.0 per distinct term; the store multiplies by the term's IDF (``Modifier.IDF``:
``ln(1 + (N - n + 0.5) / (n + 0.5))``), so a query's score is the BM25 score of the document.

The bundle says whether it has a lexical member and how it is weighted, under
``bundle.json["lexical"]`` (see :class:`LexicalSpec`).
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import snowballstemmer

from domain.bundle import Bundle

LEXICAL_MEMBER = "lexical"
DEFAULT_K1 = 1.2
DEFAULT_B = 0.75
DEFAULT_AVG_LEN = 12.0
# Keyword attributes whose values are words a shopper types (with the product name).
LEXICAL_FIELDS = ("articleType", "subCategory", "masterCategory", "gender", "baseColour", "usage")
STOPWORDS = frozenset("a an and as at by for from in into is it of on or the to with without your my".split())
# Words of a prompt template ("a photo of t-shirts"): they say how a query is put, not what it
# wants, so queries drop them (documents keep theirs: "Photo Print T-shirt").
PROMPT_WORDS = frozenset("photo photos picture pictures image images pic pics".split())
QUERY_STOPWORDS = STOPWORDS | PROMPT_WORDS

_INNER_JOINERS = re.compile(r"(?<=[^\W_])['\u2019\-](?=[^\W_])")
_T_SHIRT = re.compile(r"\bt\s+shirt")
_WORDS = re.compile(r"[^\W_]+")


class SparseVector(NamedTuple):
    """Sorted term indices (unsigned 32-bit) and their weights."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def as_dict(self) -> dict[int, float]:
        """``{index: weight}``."""
        return dict(zip(self.indices, self.values, strict=True))


@functools.lru_cache(maxsize=1)
def _stemmer():
    return snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _stemmer().stemWord(word)


def normalize(text: str) -> str:
    """NFKC, lower case, inner hyphens and apostrophes dropped, "t shirt" joined."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _T_SHIRT.sub("tshirt", _INNER_JOINERS.sub("", text))


def _words(text: str, dropped: frozenset[str]) -> list[str]:
    return [w for w in _WORDS.findall(normalize(text)) if w not in dropped]


def _terms(words: Sequence[str]) -> list[str]:
    joined = [a + b for a, b in zip(words, words[1:], strict=False)]
    return [_stem(w) for w in words] + [_stem(w) for w in joined]


def tokens(text: str) -> list[str]:
    """The stemmed terms of a document's ``text``: each word, then each pair of neighbouring words joined.

    Function words are left out. Joined pairs let a compound meet its spelling apart: "Top wear"
    and "Topwear" share ``topwear``, "flip flops" and "Flip-Flops" share ``flipflop``.
    """
    return _terms(_words(text, STOPWORDS))


def query_tokens(text: str) -> list[str]:
    """The terms of a query: as :func:`tokens`, with prompt-template words left out too."""
    return _terms(_words(text, QUERY_STOPWORDS))


def query_words(text: str) -> frozenset[str]:
    """The stemmed words a query asks for (no joined pairs, function or prompt words)."""
    return frozenset(_stem(w) for w in _words(text, QUERY_STOPWORDS))


def word_coverage(words: frozenset[str], document_terms: frozenset[str]) -> float:
    """The share of a query's ``words`` that a document has among its terms (0.0 without words).

    "laptop charger" against "Laptop Bag" covers 0.5: the catalog has both words, but no product
    has both, which is what tells a query a shop cannot answer from one it can.
    """
    if not words:
        return 0.0
    return len(words & document_terms) / len(words)


def term_index(term: str) -> int:
    """The sparse index of a term: CRC-32 of its UTF-8 bytes."""
    return zlib.crc32(term.encode("utf-8"))


def document_text(text: str, attributes: Mapping[str, Any], fields: Sequence[str] = LEXICAL_FIELDS) -> str:
    """The words a product is found by: its text, then the listed attributes it has (repeats once)."""
    parts: list[str] = [text] if text else []
    for name in fields:
        value = attributes.get(name)
        if value is None or value == "":
            continue
        value = str(value)
        if value not in parts:
            parts.append(value)
    return " ".join(parts)


@dataclass(frozen=True)
class LexicalSpec:
    """The lexical member of a bundle: fusion weight and BM25 parameters (``bundle.json["lexical"]``)."""

    weight: float = 1.0
    k1: float = DEFAULT_K1
    b: float = DEFAULT_B
    avg_len: float = DEFAULT_AVG_LEN
    fields: tuple[str, ...] = LEXICAL_FIELDS

    def __post_init__(self) -> None:
        checks = [
            ("weight", math.isfinite(self.weight) and self.weight >= 0),
            ("k1", math.isfinite(self.k1) and self.k1 > 0),
            ("b", math.isfinite(self.b) and 0 <= self.b <= 1),
            ("avg_len", math.isfinite(self.avg_len) and self.avg_len > 0),
        ]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"lexical.{name}: unusable value {getattr(self, name)!r}")
        object.__setattr__(self, "fields", tuple(self.fields))

    def to_json(self) -> dict[str, Any]:
        """The ``bundle.json["lexical"]`` object."""
        return {**asdict(self), "fields": list(self.fields)}

    def document_terms(self, text: str, attributes: Mapping[str, Any]) -> frozenset[str]:
        """The distinct terms of a product's lexical document (what :func:`word_coverage` reads)."""
        return frozenset(tokens(document_text(text, attributes, self.fields)))

    def document(self, text: str, attributes: Mapping[str, Any]) -> SparseVector:
        """A product's BM25 document vector."""
        return document_vector(
            tokens(document_text(text, attributes, self.fields)), self.k1, self.b, self.avg_len
        )


def lexical_spec(extra: Mapping[str, Any]) -> LexicalSpec | None:
    """The lexical member a bundle's extra keys declare, or None (the bundle has none)."""
    data = extra.get("lexical")
    if not data:
        return None
    if not isinstance(data, Mapping):
        raise ValueError(f"bundle lexical: expected an object, got {type(data).__name__}")
    known = {"weight", "k1", "b", "avg_len", "fields"}
    return LexicalSpec(**{k: v for k, v in data.items() if k in known})


def _sparse(weights: Mapping[int, float]) -> SparseVector:
    ordered = sorted(weights.items())
    return SparseVector(tuple(i for i, _ in ordered), tuple(float(w) for _, w in ordered))


def document_vector(terms: Sequence[str], k1: float, b: float, avg_len: float) -> SparseVector:
    """BM25 saturated term frequencies of a document's terms."""
    counts = Counter(term_index(t) for t in terms)
    norm = k1 * (1.0 - b + b * len(terms) / avg_len)
    return _sparse({i: tf * (k1 + 1.0) / (tf + norm) for i, tf in counts.items()})


def query_vector(text: str) -> SparseVector:
    """1.0 per distinct query term (the store's IDF modifier weighs them)."""
    return _sparse(dict.fromkeys((term_index(t) for t in query_tokens(text)), 1.0))


def idf(documents: int, containing: int) -> float:
    """The IDF the store applies (``Modifier.IDF``): ``ln(1 + (N - n + 0.5) / (n + 0.5))``."""
    return math.log(1.0 + (documents - containing + 0.5) / (containing + 0.5))


def average_length(texts: Iterable[str]) -> float:
    """Mean number of terms per document (the ``avg_len`` of :class:`LexicalSpec`); 1.0 when empty."""
    lengths = [len(tokens(t)) for t in texts]
    return max(1.0, sum(lengths) / len(lengths)) if lengths else 1.0


__all__ = [
    "DEFAULT_AVG_LEN",
    "DEFAULT_B",
    "DEFAULT_K1",
    "LEXICAL_FIELDS",
    "LEXICAL_MEMBER",
    "PROMPT_WORDS",
    "QUERY_STOPWORDS",
    "LexicalSpec",
    "SparseVector",
    "average_length",
    "document_text",
    "document_vector",
    "ensemble_members",
    "ensemble_weights",
    "idf",
    "lexical_spec",
    "normalize",
    "query_tokens",
    "query_vector",
    "query_words",
    "term_index",
    "tokens",
    "word_coverage",
]


def ensemble_members(bundle: Bundle) -> tuple[str, ...]:
    """The bundle's members as search sees them: the dense ones, then the lexical one when it has it."""
    lexical = lexical_spec(bundle.extra)
    return bundle.member_names + ((LEXICAL_MEMBER,) if lexical is not None else ())


def ensemble_weights(bundle: Bundle) -> dict[str, float]:
    """Fusion weight per member of :func:`ensemble_members`."""
    lexical = lexical_spec(bundle.extra)
    return bundle.weights() | ({LEXICAL_MEMBER: lexical.weight} if lexical is not None else {})
