"""Typed, frozen configuration built once from a TOML file plus ``VITRINE_*`` env overrides.

Every field of every section can be overridden by ``VITRINE_<SECTION>_<FIELD>``, e.g.
``VITRINE_EMBEDDER_MAX_BATCH=64`` or ``VITRINE_STORE_URL=http://qdrant:6333``. The file is
``$VITRINE_CONFIG`` if set, else ``config/vitrine.toml`` when present, else built-in defaults.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domain.query_vectors import EXPANSION_NEIGHBOURS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config" / "vitrine.toml"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class ServerConfig:
    """Network and protection settings of one gRPC server."""

    host: str = "127.0.0.1"
    port: int = 0
    max_message_mb: int = 32
    grace_s: float = 10.0
    # On SIGTERM: report NOT_SERVING but keep accepting calls this long, so load balancers and
    # readiness probes stop routing here before new calls are refused (then drain for grace_s).
    drain_delay_s: float = 0.0
    max_concurrent_rpcs: int = 256
    metrics_port: int = 0  # 0 disables the Prometheus endpoint
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""  # set to require client certificates (mTLS)
    auth_token: str = ""  # when set, calls need "authorization: Bearer <token>"


@dataclass(frozen=True)
class EmbedderConfig:
    """Model serving settings."""

    bundle: str = str(PROJECT_ROOT / "data" / "bundles" / "default")
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (fp16 on CUDA, fp32 on CPU) | fp32 | fp16 | bf16
    # CPU threads; 0 = torch: the cores left after the decode workers (all when the bundle has ONNX
    # image trunks), ONNX trunks: all
    threads: int = 0
    # Pretrained image trunks: auto = ONNX Runtime on CPU (2.2-2.4x torch), torch on CUDA | onnx | torch
    image_runtime: str = "auto"
    # The frozen text trunk that members share: auto = ONNX Runtime on CPU (2.9x torch on one
    # query), torch on CUDA | onnx | torch
    text_runtime: str = "auto"
    batching: bool = True  # coalesce concurrent requests into batches
    max_batch: int = 64
    max_wait_ms: float = 5.0  # how long an idle batch waits for requests still being decoded
    max_queue: int = 4096  # queued items before RESOURCE_EXHAUSTED
    max_items: int = 256  # inputs per request
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_text_chars: int = 2000
    decode_workers: int = 2


@dataclass(frozen=True)
class StoreConfig:
    """Vector store: embedded Qdrant Edge by default, a Qdrant server/cluster by URL."""

    backend: str = "edge"  # edge | qdrant
    path: str = str(PROJECT_ROOT / "data" / "store")
    url: str = ""  # http(s)://host:6333, or ":memory:" / "path:DIR" for qdrant-client local mode
    api_key: str = ""
    timeout_s: float = 10.0
    prefer_grpc: bool = False
    shards: int = 1
    replication_factor: int = 1
    catalog: str = "catalog"  # alias name; collections are <catalog>__<bundle>-<version>
    # Index and search settings, the same for Edge and Qdrant (services/storage/settings.py);
    # they apply to collections created from now on (search_ef and quantization_rescore: to queries).
    hnsw_m: int = 16  # HNSW links per node
    hnsw_ef_construct: int = 100  # build-time candidate list: higher = better graph, slower build
    # A filter matching less than this many KB of vectors is scanned exactly; low, because a filter
    # on a tenant field walks its payload-linked subgraph (README "Filters that walk the graph").
    hnsw_full_scan_threshold_kb: int = 1_000
    hnsw_payload_m: int = 16  # extra links per payload value, for tenant fields only; 0 = none
    # Query time: a filter naming no tenant field is scanned exactly below this many KB of matches.
    hnsw_unlinked_scan_threshold_kb: int = 10_000
    search_ef: int = 0  # query-time candidate list; 0 = the engine's default (ef_construct)
    search_acorn: bool = False  # ACORN-1 filtered graph search for every filter
    # ACORN for a filter naming no tenant field that is not scanned: its graph walk has no payload
    # links and falls apart under the filter without ACORN's two-hop neighbours
    search_unlinked_acorn: bool = True
    segments: int = 0  # optimizer's target segment count; 0 = the engine's default (CPU count)
    indexing_threads: int = 0  # threads per index build; 0 = the engine's choice
    indexing_threshold_kb: int = 0  # segments larger than this get an HNSW index; 0 = the engine's
    quantization: str = "none"  # none | int8 (scalar quantization, rescored with the full vectors)
    # float32 | float16: float16 halves the vectors' memory (large catalogs; cosines move by <= ~1e-4)
    vector_datatype: str = "float32"
    quantization_always_ram: bool = True  # keep the quantized vectors in RAM
    quantization_rescore: bool = True  # re-score quantized candidates with the original vectors


@dataclass(frozen=True)
class BlobsConfig:
    """Where pushed image bytes are kept (ingest writes; reindex, the gateway and search read)."""

    backend: str = "files"  # files (a folder, local or a shared volume); the port takes more adapters
    # "auto" = <store.path>/blobs (qdrant-client "path:DIR" -> DIR/blobs; off for ":memory:");
    # "off" disables (pushed bytes are then dropped and Reindex cannot re-embed them); else a folder.
    dir: str = "auto"


@dataclass(frozen=True)
class IngestConfig:
    """Ingest pipeline settings."""

    embedder_addr: str = "127.0.0.1:50051"
    embedder_tls_ca: str = ""  # CA file: call the embedder over TLS
    embedder_auth_token: str = ""  # bearer token for the embedder (needs TLS)
    batch_size: int = 64
    queue_batches: int = 4  # bounded queue between reading the stream and writing the store
    allowed_image_root: str = str(PROJECT_ROOT)
    allow_http: bool = False
    max_image_bytes: int = 20 * 1024 * 1024
    rpc_timeout_s: float = 30.0  # deadline of one EmbedImages call
    http_timeout_s: float = 10.0  # fetching an http(s) image_uri (only with allow_http)
    reindex_max_failed: int = 0  # a reindex with more failed products leaves the alias where it was


@dataclass(frozen=True)
class SearchConfig:
    """Query-time settings."""

    embedder_addr: str = "127.0.0.1:50051"
    embedder_tls_ca: str = ""  # CA file: call the embedder over TLS
    embedder_auth_token: str = ""  # bearer token for the embedder (needs TLS)
    bundle: str = ""  # bundle directory; "" = take names, weights and fusion from the embedder (GetBundle)
    default_top_k: int = 10
    max_top_k: int = 200  # also the most ids one GetItems call may ask for
    max_offset: int = 10_000
    overfetch: float = 3.0  # each member returns (offset + top_k) * overfetch candidates ...
    min_candidates: int = 100  # ... but at least this many, so early pages fuse the same lists
    rrf_k: int = 0  # RRF k; 0 = the bundle's fusion.rrf_k
    store_rrf: bool = (
        True  # plain rrf without explain/re-rank is fused by the store in one call (matched_members 0)
    )
    max_filters: int = 16
    cluster_boost: float = 0.5  # ENCLIP re-rank: relative boost for hits in the majority clusters
    cluster_top_n: int = 10  # ENCLIP re-rank: top hits per member that vote for its majority cluster
    rpc_timeout_s: float = 10.0  # budget of one request (embed + store) when the caller's deadline is longer
    reply_reserve_s: float = 0.05  # kept back from the caller's deadline to fuse and send the partial reply
    facet_candidates: int = 200  # Facets with a query counts this many fused candidates
    # image queries (no text) and MoreLikeThis: averaged with this many first-round neighbours; 0 = off
    image_expansion: int = EXPANSION_NEIGHBOURS
    # Query embedding cache (text by normalized text, images by sha256; one limit for both; 0 = off)
    query_cache_size: int = 10_000
    query_cache_ttl_s: float = 3600.0  # entries older than this are embedded again; 0 = no expiry
    query_cache_casefold: bool = (
        True  # "Black  Shirt" = "black shirt" (the default bundle's tokenizers lower-case)
    )


@dataclass(frozen=True)
class CatalogConfig:
    """The catalog's own fields (see domain/schema.py and the README's "Catalog fields")."""

    schema: str = (
        ""  # TOML file with a [fields] table (name = "keyword" | "integer" | ...); "" = Fashion default
    )


@dataclass(frozen=True)
class WebConfig:
    """HTTP gateway and shopper page over the Search RPC."""

    host: str = "127.0.0.1"
    port: int = 8080
    search_addr: str = "127.0.0.1:50053"
    embedder_addr: str = "127.0.0.1:50051"
    image_root: str = str(PROJECT_ROOT.parent)  # item images are served only from under this folder
    max_upload_mb: int = 10
    timeout_s: float = 10.0
    image_max_age_s: int = 3600  # Cache-Control max-age of item images (revalidated by ETag after)


@dataclass(frozen=True)
class VitrineConfig:
    """The whole configuration; services take the sections they need."""

    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)

    blobs: BlobsConfig = field(default_factory=BlobsConfig)
    web: WebConfig = field(default_factory=WebConfig)
    embedder_server: ServerConfig = field(default_factory=lambda: ServerConfig(port=50051))
    ingest_server: ServerConfig = field(default_factory=lambda: ServerConfig(port=50052))
    search_server: ServerConfig = field(default_factory=lambda: ServerConfig(port=50053))
    log_level: str = "INFO"
    log_json: bool = True


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a TOML or env value to the annotated field type, or raise ConfigError."""
    hint = typing.get_origin(annotation) or annotation
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(f"not a boolean: {value!r}")
        if hint is int:
            if isinstance(value, bool):
                raise ValueError("boolean given")
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    raise ConfigError(f"{where}: unsupported type {annotation!r}")


def _build(cls: type, default: Any, data: Any, env: Mapping[str, str], prefix: str) -> Any:
    """Overlay file values, then env values, on ``default`` (an instance of ``cls``)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"[{prefix.lower()}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        where = f"[{prefix.lower()}]" if prefix else "the top level"
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in {where}; valid: {sorted(known)}")
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        current = getattr(default, f.name)
        if dataclasses.is_dataclass(hint):
            changes[f.name] = _build(hint, current, data.get(f.name, {}), env, f.name.upper())
            continue
        env_name = "_".join(p for p in ("VITRINE", prefix, f.name) if p).upper()
        if env_name in env:
            changes[f.name] = _coerce(env[env_name], hint, env_name)
        elif f.name in data:
            changes[f.name] = _coerce(data[f.name], hint, f"{prefix.lower()}.{f.name}".strip("."))
    return dataclasses.replace(default, **changes)


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> VitrineConfig:
    """Build the configuration from ``path`` (or the default file) and env overrides."""
    env = os.environ if env is None else env
    file = Path(path) if path else Path(env.get("VITRINE_CONFIG", DEFAULT_CONFIG_FILE))
    data: dict[str, Any] = {}
    if file.exists():
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    elif path or "VITRINE_CONFIG" in env:
        raise ConfigError(f"config file not found: {file}")
    return _build(VitrineConfig, VitrineConfig(), data, env, "")


def env_var_table() -> list[tuple[str, str, str]]:
    """Every ``VITRINE_*`` variable with its type and default, for docs and ``--help``."""
    rows: list[tuple[str, str, str]] = []
    defaults = VitrineConfig()
    for section in dataclasses.fields(VitrineConfig):
        value = getattr(defaults, section.name)
        if dataclasses.is_dataclass(value):
            hints = typing.get_type_hints(type(value))
            for f in dataclasses.fields(value):
                name = f"VITRINE_{section.name}_{f.name}".upper()
                rows.append(
                    (
                        name,
                        getattr(hints[f.name], "__name__", str(hints[f.name])),
                        repr(getattr(value, f.name)).replace(str(PROJECT_ROOT), "<repo>"),
                    )
                )
        else:
            rows.append((f"VITRINE_{section.name}".upper(), type(value).__name__, repr(value)))
    return rows


__all__ = [
    "CatalogConfig",
    "BlobsConfig",
    "ConfigError",
    "EmbedderConfig",
    "IngestConfig",
    "SearchConfig",
    "ServerConfig",
    "StoreConfig",
    "VitrineConfig",
    "WebConfig",
    "env_var_table",
    "load_config",
    "PROJECT_ROOT",
]
