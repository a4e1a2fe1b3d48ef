"""Edge shard configs and query params from :class:`IndexSettings`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import qdrant_edge as qe

from services.storage.checks import dense_and_sparse
from services.storage.port import SPARSE
from services.storage.settings import IndexSettings, optional, settings_from_parts


def edge_config(
    vectors: Mapping[str, int], settings: IndexSettings, on_disk_payload: bool | None = None
) -> qe.EdgeConfig:
    """A shard config: cosine named vectors stored as ``settings.datatype`` (IDF sparse ones for
    members of dim ``SPARSE``) plus the HNSW, optimizer and quantization settings."""
    quantization = None
    if settings.quantization == "int8":
        quantization = qe.ScalarQuantizationConfig(
            qe.ScalarType.Int8, quantile=0.99, always_ram=settings.quantization_always_ram
        )
    dense, sparse = dense_and_sparse(vectors)
    datatype = qe.VectorStorageDatatype.Float16 if settings.datatype == "float16" else None
    return qe.EdgeConfig(
        vectors={
            m: qe.EdgeVectorParams(size=d, distance=qe.Distance.Cosine, datatype=datatype)
            for m, d in dense.items()
        },
        sparse_vectors={m: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf) for m in sparse} or None,
        on_disk_payload=on_disk_payload,
        hnsw_config=qe.HnswIndexConfig(
            m=settings.m,
            ef_construct=settings.ef_construct,
            full_scan_threshold=settings.full_scan_threshold_kb,
            max_indexing_threads=settings.indexing_threads,
            payload_m=settings.payload_m,
        ),
        optimizers=qe.EdgeOptimizersConfig(
            default_segment_number=optional(settings.segments),
            indexing_threshold=optional(settings.indexing_threshold_kb),
        ),
        quantization_config=quantization,
    )


def search_params(
    settings: IndexSettings, exact: bool = False, acorn: bool = False
) -> qe.SearchParams | None:
    """Query-time ``hnsw_ef``, ACORN and quantization rescoring (None when all are the engine's
    defaults); with ``exact``, a scan of the filter's matches instead of the graph; with ``acorn``,
    ACORN whatever the settings say."""
    rescore = settings.quantization != "none"
    if not settings.search_ef and not rescore and not (settings.acorn or acorn) and not exact:
        return None
    quantization = qe.QuantizationSearchParams(rescore=settings.quantization_rescore) if rescore else None
    walk = qe.AcornSearchParams(enable=True) if settings.acorn or acorn else None
    return qe.SearchParams(
        hnsw_ef=optional(settings.search_ef), exact=exact, quantization=quantization, acorn=walk
    )


def shard_vectors(config: Mapping[str, Any]) -> dict[str, int]:
    """``{member: dim}`` of a shard's stored config (``edge_config.json``; sparse members: SPARSE)."""
    dense = {name: int(params["size"]) for name, params in (config.get("vectors") or {}).items()}
    return dense | dict.fromkeys(config.get("sparse_vectors") or {}, SPARSE)


def shard_settings(config: Mapping[str, Any]) -> IndexSettings:
    """The index settings a shard's stored config (``edge_config.json``) records."""
    return settings_from_parts(
        config.get("hnsw_config") or {},
        config.get("optimizers") or {},
        config.get("quantization_config"),
        config.get("vectors"),
    )
