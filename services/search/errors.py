"""Errors the search core raises; the servicer maps each to one gRPC status code."""

from __future__ import annotations

import grpc


class SearchError(Exception):
    """Base of the search core's errors."""


class SearchValidationError(SearchError, ValueError):
    """A request field is unusable (INVALID_ARGUMENT); the message names the field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ItemNotFound(SearchError, LookupError):
    """The product id is not in the collection (NOT_FOUND)."""

    def __init__(self, product_id: str, collection: str) -> None:
        super().__init__(f"id: product {product_id!r} not found in {collection!r}")
        self.product_id = product_id


class SearchUnavailable(SearchError):
    """No member produced results, or a dependency failed (UNAVAILABLE)."""


class SearchDeadlineExceeded(SearchUnavailable):
    """The deadline passed before any member answered (DEADLINE_EXCEEDED)."""


# Most specific first: SearchDeadlineExceeded is a SearchUnavailable.
STATUS_FOR: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (SearchValidationError, grpc.StatusCode.INVALID_ARGUMENT),
    (ItemNotFound, grpc.StatusCode.NOT_FOUND),
    (SearchDeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (SearchUnavailable, grpc.StatusCode.UNAVAILABLE),
)

__all__ = [
    "STATUS_FOR",
    "ItemNotFound",
    "SearchDeadlineExceeded",
    "SearchError",
    "SearchUnavailable",
    "SearchValidationError",
]
