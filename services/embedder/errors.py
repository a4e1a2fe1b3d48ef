"""Errors the embedder core raises; the servicer maps them to gRPC status codes."""

from __future__ import annotations


class InvalidInput(ValueError):
    """A request item is unusable; ``field`` names it, e.g. ``images[3]``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Overloaded(RuntimeError):
    """The batch queue is full; the caller should back off (RESOURCE_EXHAUSTED)."""
