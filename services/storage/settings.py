"""Index and search settings shared by both adapters (HNSW, optimizer, quantization, search ef).

Both Edge and Qdrant name these the same way (``hnsw_config.m``, ``optimizers.indexing_threshold``,
``quantization_config.scalar``...), so :func:`settings_from_parts` reads them back from either an
Edge shard's ``edge_config.json`` or a Qdrant collection's ``config`` (as plain dicts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.common.config import StoreConfig

QUANTIZATIONS = ("none", "int8")
DATATYPES = ("float32", "float16")


@dataclass(frozen=True)
class IndexSettings:
    """How a collection is indexed and searched; 0 means "the engine's default" where noted."""

    m: int = 16  # HNSW links per node; 0 disables the graph (bulk loading)
    ef_construct: int = 100
    # Below this many KB of matching vectors the engine scans a filter's matches; low, so that a
    # filter on a field with payload links walks its subgraph (services/storage/scan_plan.py).
    full_scan_threshold_kb: int = 1_000
    payload_m: int = 16  # extra links per payload value; built for tenant fields only
    # Query time: a filter on no linked field, matching less than this, is scanned exactly.
    unlinked_scan_threshold_kb: int = 10_000
    search_ef: int = 0  # hnsw_ef at query time; 0 = the engine's (ef_construct)
    acorn: bool = False  # ACORN-1 filtered graph search (two-hop neighbours) for every filter
    # ACORN for a filter that names no linked field and is not scanned (its walk has no links)
    unlinked_acorn: bool = True
    segments: int = 0  # optimizer's target segment count; 0 = the engine's (CPU count)
    indexing_threads: int = 0  # threads of one index build; 0 = the engine's choice
    indexing_threshold_kb: int = 0  # segments above this size get an index; 0 = the engine's
    quantization: str = "none"  # none | int8 (scalar, kept in RAM, rescored with full vectors)
    # how dense vectors are stored: float16 halves their memory (catalog cosines move <= ~1e-4)
    datatype: str = "float32"
    quantization_always_ram: bool = True
    quantization_rescore: bool = True

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"store.quantization {self.quantization!r}: valid: {list(QUANTIZATIONS)}")
        if self.datatype not in DATATYPES:
            raise ValueError(f"store.vector_datatype {self.datatype!r}: valid: {list(DATATYPES)}")
        for name in (
            "m",
            "ef_construct",
            "full_scan_threshold_kb",
            "payload_m",
            "unlinked_scan_threshold_kb",
            "search_ef",
            "segments",
            "indexing_threads",
            "indexing_threshold_kb",
        ):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"store.{STORE_FIELDS.get(name, name)} must be >= 0, got {getattr(self, name)}"
                )
        if self.ef_construct < 4:
            raise ValueError(f"store.hnsw_ef_construct must be >= 4, got {self.ef_construct}")

    @property
    def stored(self) -> IndexSettings:
        """The part a collection keeps (search-time settings reset to their defaults)."""
        return dataclasses.replace(
            self,
            search_ef=0,
            acorn=False,
            unlinked_acorn=IndexSettings.unlinked_acorn,
            quantization_rescore=True,
            unlinked_scan_threshold_kb=IndexSettings.unlinked_scan_threshold_kb,
        )

    def searched_with(self, search: IndexSettings) -> IndexSettings:
        """These stored settings with the query-time ones (ef, ACORN, rescoring, how unlinked
        filters are planned) of ``search``."""
        return dataclasses.replace(
            self,
            search_ef=search.search_ef,
            acorn=search.acorn,
            unlinked_acorn=search.unlinked_acorn,
            quantization_rescore=search.quantization_rescore,
            unlinked_scan_threshold_kb=search.unlinked_scan_threshold_kb,
        )

    def bulk(self) -> IndexSettings:
        """The same settings with the graph switched off (``m=0``) while a bulk load uploads."""
        return dataclasses.replace(self, m=0)


# IndexSettings field -> StoreConfig field (the config names say which part of the store they set).
STORE_FIELDS = {
    "m": "hnsw_m",
    "ef_construct": "hnsw_ef_construct",
    "full_scan_threshold_kb": "hnsw_full_scan_threshold_kb",
    "unlinked_scan_threshold_kb": "hnsw_unlinked_scan_threshold_kb",
    "payload_m": "hnsw_payload_m",
    "search_ef": "search_ef",
    "acorn": "search_acorn",
    "unlinked_acorn": "search_unlinked_acorn",
    "segments": "segments",
    "indexing_threads": "indexing_threads",
    "indexing_threshold_kb": "indexing_threshold_kb",
    "quantization": "quantization",
    "datatype": "vector_datatype",
    "quantization_always_ram": "quantization_always_ram",
    "quantization_rescore": "quantization_rescore",
}


def index_settings(cfg: StoreConfig) -> IndexSettings:
    """The index settings of ``cfg`` (``VITRINE_STORE_HNSW_M`` and friends)."""
    return IndexSettings(**{ours: getattr(cfg, theirs) for ours, theirs in STORE_FIELDS.items()})


def optional(value: int) -> int | None:
    """0 ("the engine's default") as None, for the engines' optional fields."""
    return value or None


def _enum_name(value: Any) -> str:
    """``Datatype.FLOAT16``, ``"Float16"`` or ``"float16"`` as ``float16``."""
    return str(value or "").lower().rsplit(".", 1)[-1]


def stored_datatype(vectors: Mapping[str, Any] | None) -> str:
    """The storage datatype of a collection's dense vectors (their params as dicts; float32 when
    none says otherwise)."""
    for params in (vectors or {}).values():
        kind = _enum_name((params or {}).get("datatype"))
        if kind in DATATYPES:
            return kind
    return "float32"


def settings_from_parts(
    hnsw: Mapping[str, Any],
    optimizers: Mapping[str, Any],
    quantization: Mapping[str, Any] | None,
    vectors: Mapping[str, Any] | None = None,
) -> IndexSettings:
    """The stored settings of a collection from its ``hnsw_config``, optimizer and quantization
    config and its dense vectors' params."""
    scalar = (quantization or {}).get("scalar") or {}
    kind = _enum_name(scalar.get("type", ""))
    return IndexSettings(
        m=int(hnsw.get("m") or 0),
        ef_construct=int(hnsw.get("ef_construct") or 100),
        full_scan_threshold_kb=int(hnsw.get("full_scan_threshold") or 0),
        payload_m=int(hnsw["payload_m"] if hnsw.get("payload_m") is not None else hnsw.get("m") or 0),
        segments=int(optimizers.get("default_segment_number") or 0),
        indexing_threads=int(hnsw.get("max_indexing_threads") or 0),
        indexing_threshold_kb=int(optimizers.get("indexing_threshold") or 0),
        quantization="int8" if kind == "int8" else "none",
        quantization_always_ram=bool(scalar.get("always_ram", True)),
        datatype=stored_datatype(vectors),
    )


__all__ = ["DATATYPES", "IndexSettings", "QUANTIZATIONS", "index_settings", "optional", "settings_from_parts"]
