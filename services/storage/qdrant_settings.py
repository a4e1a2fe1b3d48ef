"""qdrant-client collection options, vector and payload index params, and query params."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qdrant_client import models

from domain.schema import FieldIndex
from services.storage.checks import dense_and_sparse
from services.storage.port import SPARSE, StoreError, index_flags
from services.storage.settings import IndexSettings, optional, settings_from_parts

INDEX_SCHEMAS = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
    "datetime": models.PayloadSchemaType.DATETIME,
    "text": models.PayloadSchemaType.TEXT,
}


def qdrant_index_schema(spec: FieldIndex) -> Any:
    """qdrant-client's index params for a payload index (see :func:`index_flags`), as on Edge."""
    flags = index_flags(spec)
    if spec.kind == "keyword":
        return models.KeywordIndexParams(
            type=models.KeywordIndexType.KEYWORD, is_tenant=flags.tenant, enable_hnsw=flags.links
        )
    if spec.kind == "integer":
        return models.IntegerIndexParams(
            type=models.IntegerIndexType.INTEGER,
            lookup=True,
            range=True,
            is_principal=flags.principal,
            enable_hnsw=False,
        )
    if spec.kind == "float":
        return models.FloatIndexParams(
            type=models.FloatIndexType.FLOAT, is_principal=flags.principal, enable_hnsw=False
        )
    if spec.kind == "datetime":
        return models.DatetimeIndexParams(
            type=models.DatetimeIndexType.DATETIME, is_principal=flags.principal, enable_hnsw=False
        )
    return INDEX_SCHEMAS[spec.kind]


def collection_options(settings: IndexSettings) -> dict[str, Any]:
    """``create_collection`` keyword arguments for the HNSW, optimizer and quantization settings."""
    quantization = None
    if settings.quantization == "int8":
        quantization = models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, quantile=0.99, always_ram=settings.quantization_always_ram
            )
        )
    return {
        "hnsw_config": hnsw_diff(settings),
        "optimizers_config": models.OptimizersConfigDiff(
            default_segment_number=settings.segments,
            indexing_threshold=optional(settings.indexing_threshold_kb),
            max_optimization_threads=optional(settings.indexing_threads),
        ),
        "quantization_config": quantization,
    }


def hnsw_diff(settings: IndexSettings) -> models.HnswConfigDiff:
    """The HNSW part of the settings (``m=0``: no graph, as during a bulk upload)."""
    return models.HnswConfigDiff(
        m=settings.m,
        ef_construct=settings.ef_construct,
        full_scan_threshold=settings.full_scan_threshold_kb,
        max_indexing_threads=settings.indexing_threads,
        payload_m=settings.payload_m,
    )


def vector_params(
    wanted: Mapping[str, int], datatype: str = "float32"
) -> tuple[dict[str, models.VectorParams], dict[str, models.SparseVectorParams]]:
    """Cosine params per dense member (stored as ``datatype``) and IDF-modified params per sparse
    one (``SPARSE`` dims)."""
    dense, sparse = dense_and_sparse(wanted)
    stored_as = models.Datatype.FLOAT16 if datatype == "float16" else None
    return (
        {
            m: models.VectorParams(size=d, distance=models.Distance.COSINE, datatype=stored_as)
            for m, d in dense.items()
        },
        {m: models.SparseVectorParams(modifier=models.Modifier.IDF) for m in sparse},
    )


def stored_settings(config: models.CollectionConfig) -> IndexSettings:
    """The index settings a collection's config (``get_collection(...).config``) reports."""
    quantization = config.quantization_config
    vectors = config.params.vectors
    return settings_from_parts(
        config.hnsw_config.model_dump(),
        config.optimizer_config.model_dump(),
        quantization.model_dump() if quantization is not None else None,
        {m: v.model_dump() for m, v in vectors.items()} if isinstance(vectors, dict) else None,
    )


def search_params(
    settings: IndexSettings, exact: bool = False, acorn: bool = False
) -> models.SearchParams | None:
    """Query-time ``hnsw_ef``, ACORN and quantization rescoring (None when all are the engine's
    defaults); with ``exact``, a scan of the filter's matches instead of the graph; with ``acorn``,
    ACORN whatever the settings say."""
    rescore = settings.quantization != "none"
    if not settings.search_ef and not rescore and not (settings.acorn or acorn) and not exact:
        return None
    quantization = models.QuantizationSearchParams(rescore=settings.quantization_rescore) if rescore else None
    walk = models.AcornSearchParams(enable=True) if settings.acorn or acorn else None
    return models.SearchParams(
        hnsw_ef=optional(settings.search_ef), exact=exact, quantization=quantization, acorn=walk
    )


def vector_spec(collection: str, params: models.CollectionParams) -> dict[str, int]:
    """``{member: dim}`` of a collection's params (sparse members: SPARSE); named vectors only."""
    vectors, sparse = params.vectors, params.sparse_vectors or {}
    if not isinstance(vectors, Mapping):
        raise StoreError(f"collection {collection!r} has an unnamed vector; vitrine needs named vectors")
    return {name: int(v.size) for name, v in vectors.items()} | dict.fromkeys(sparse, SPARSE)
