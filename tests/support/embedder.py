"""Embedder settings for tests: small limits so batching and overload show up quickly."""

from __future__ import annotations

from services.common.config import EmbedderConfig

EMBEDDER_TEST_CFG = EmbedderConfig(
    device="cpu", threads=1, max_batch=16, max_wait_ms=20, max_queue=64, max_items=32
)
