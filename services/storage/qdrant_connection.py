"""Connecting qdrant-client as ``StoreConfig.url`` says, and its errors and vectors in the port's terms."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator

import grpc
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ApiException, UnexpectedResponse

from domain.lexical import SparseVector
from services.common.config import StoreConfig
from services.storage.checks import as_vector, sparse_parts
from services.storage.port import CollectionNotFound, StoreError, Vector

LOCAL_MEMORY = ":memory:"
LOCAL_PATH_PREFIX = "path:"
OPTIMIZE_TIMEOUT_S, OPTIMIZE_POLL_S = 600.0, 0.5  # waiting for a server's index build


def client_vector(values: Vector, where: str) -> list[float] | models.SparseVector:
    """A dense member's values as a float list, a sparse member's as qdrant-client's SparseVector."""
    if isinstance(values, SparseVector):
        indices, weights = sparse_parts(values, where)
        return models.SparseVector(indices=indices, values=weights)
    return as_vector(values)


def make_client(cfg: StoreConfig) -> tuple[QdrantClient, bool]:
    """A client for ``cfg.url`` and whether it runs in local mode."""
    url = cfg.url.strip()
    if url == LOCAL_MEMORY:
        return QdrantClient(LOCAL_MEMORY), True
    if url.startswith(LOCAL_PATH_PREFIX):
        # One lock serializes local-mode calls, so sqlite may be used from several threads.
        return QdrantClient(path=url[len(LOCAL_PATH_PREFIX) :], force_disable_check_same_thread=True), True
    if not url.startswith(("http://", "https://")):
        raise ValueError(
            f"store.url {cfg.url!r}: expected http(s)://host:port, {LOCAL_MEMORY!r} or '{LOCAL_PATH_PREFIX}DIR'"
        )
    client = QdrantClient(
        url=url,
        api_key=cfg.api_key or None,
        timeout=max(1, math.ceil(cfg.timeout_s)),
        prefer_grpc=cfg.prefer_grpc,
        check_compatibility=False,
    )
    return client, False


def is_missing_index(exc: Exception) -> bool:
    """Whether a server refused a facet because the field has no suitable payload index."""
    if isinstance(exc, UnexpectedResponse):
        refused, text = exc.status_code == 400, str(exc)
    elif isinstance(exc, grpc.RpcError):
        refused = exc.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        text = str(exc.details())  # type: ignore[attr-defined]
    else:
        return False
    return refused and "index" in text.lower()


@contextlib.contextmanager
def missing_index_as(error: Exception) -> Iterator[None]:
    """Raise ``error`` instead when a server refuses a call for want of a payload index."""
    try:
        yield
    except (UnexpectedResponse, grpc.RpcError) as exc:
        if is_missing_index(exc):
            raise error from exc
        raise


@contextlib.contextmanager
def client_errors(what: str) -> Iterator[None]:
    """Map qdrant-client's errors (local mode, REST, gRPC) to :class:`CollectionNotFound` or
    :class:`StoreError`."""
    try:
        yield
    except ValueError as exc:  # local mode reports missing collections this way
        if "not found" in str(exc):
            raise CollectionNotFound(f"{what}: {exc}") from exc
        raise
    except UnexpectedResponse as exc:
        if exc.status_code == 404:
            raise CollectionNotFound(f"{what}: {exc}") from exc
        raise StoreError(f"{what}: {exc}") from exc
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
            raise CollectionNotFound(f"{what}: {exc}") from exc
        raise StoreError(f"{what}: {exc}") from exc
    except (ApiException, OSError) as exc:
        raise StoreError(f"{what}: {exc}") from exc


__all__ = [
    "LOCAL_MEMORY",
    "LOCAL_PATH_PREFIX",
    "client_errors",
    "client_vector",
    "is_missing_index",
    "make_client",
    "missing_index_as",
    "wait_until_green",
]


def wait_until_green(
    client: QdrantClient, collection: str, timeout_s: float = OPTIMIZE_TIMEOUT_S
) -> models.CollectionInfo:
    """Poll until the server reports the collection green (its index builds done), else StoreError;
    returns the green collection's info."""
    deadline = time.monotonic() + timeout_s
    while True:
        with client_errors(f"optimize {collection}"):
            info = client.get_collection(collection)
            if info.status == models.CollectionStatus.GREEN:
                return info
        if time.monotonic() >= deadline:
            raise StoreError(f"collection {collection!r} not optimized after {timeout_s:g}s")
        time.sleep(OPTIMIZE_POLL_S)
