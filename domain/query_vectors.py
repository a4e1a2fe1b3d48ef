"""Query vectors built from stored or embedded item vectors (numpy only: search imports it)."""

from __future__ import annotations

import numpy as np

# Image queries are expanded with this many of their first round's fused neighbours (0 = off); the
# figure is chosen on the validation split (README, "Image query expansion").
EXPANSION_NEIGHBOURS = 3


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def image_query_vector(vector: np.ndarray, channel_size: int) -> np.ndarray:
    """An image vector as a query about what the item is, not its colour: the channel's trailing
    ``channel_size`` dimensions zeroed and the rest renormalized (one vector or a batch)."""
    if not channel_size:
        return vector
    out = np.array(vector, dtype=np.float32, copy=True)
    out[..., -channel_size:] = 0.0
    return _unit(out)


def expanded_query_vector(query: np.ndarray, neighbours: np.ndarray, channel_size: int) -> np.ndarray:
    """Average query expansion (Chum et al., 2007) of one image query vector: the unit query plus
    the unit mean of its neighbours' vectors (``neighbours``: one row each, as stored), renormalized.

    The neighbours enter as image queries (:func:`image_query_vector`: their colour channel left
    out), like the query itself. Without neighbours the query is returned unchanged.
    """
    query = np.asarray(query, dtype=np.float32)
    neighbours = np.asarray(neighbours, dtype=np.float32).reshape(-1, query.shape[-1])
    if not len(neighbours):
        return query
    centre = _unit(image_query_vector(neighbours, channel_size).mean(axis=0))
    return _unit(_unit(query) + centre).astype(np.float32)


__all__ = ["EXPANSION_NEIGHBOURS", "expanded_query_vector", "image_query_vector"]
