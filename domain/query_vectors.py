"""Query vectors built from stored or embedded item vectors (numpy only: search imports it)."""

from __future__ import annotations

import numpy as np


def image_query_vector(vector: np.ndarray, channel_size: int) -> np.ndarray:
    """An image vector as a query about what the item is, not its colour: the channel's trailing
    ``channel_size`` dimensions zeroed and the rest renormalized (one vector or a batch)."""
    if not channel_size:
        return vector
    out = np.array(vector, dtype=np.float32, copy=True)
    out[..., -channel_size:] = 0.0
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)


__all__ = ["image_query_vector"]
