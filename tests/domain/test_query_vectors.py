"""Image query vectors: the colour channel left out, and average query expansion."""

from __future__ import annotations

import numpy as np

from domain.query_vectors import expanded_query_vector, image_query_vector


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_expansion_adds_the_neighbours_mean_to_the_query():
    rng = np.random.default_rng(0)
    query = _unit(rng.normal(size=8)).astype(np.float32)
    neighbours = _unit(rng.normal(size=(4, 8))).astype(np.float32)
    out = expanded_query_vector(query, neighbours, 0)
    expected = _unit(query + _unit(neighbours.mean(axis=0)))
    assert out.dtype == np.float32 and np.isclose(np.linalg.norm(out), 1.0, atol=1e-6)
    assert np.allclose(out, expected, atol=1e-6)
    # the query moves towards its neighbours: closer to their mean than before
    centre = _unit(neighbours.mean(axis=0))
    assert out @ centre > query @ centre


def test_expansion_leaves_the_neighbours_colour_channel_out():
    query = image_query_vector(_unit(np.array([1.0, 0.0, 0.0, 0.5, 0.5], np.float32)), 2)
    neighbour = _unit(np.array([[0.0, 1.0, 0.0, 0.9, 0.0]], np.float32))
    out = expanded_query_vector(query, neighbour, 2)
    assert not out[-2:].any(), "no colour from the neighbours either"
    assert np.allclose(out, _unit(np.array([1.0, 1.0, 0.0, 0.0, 0.0])), atol=1e-6)


def test_expansion_without_neighbours_or_with_the_query_itself_is_the_query():
    query = _unit(np.array([0.0, 3.0, 4.0], np.float32))
    assert np.array_equal(expanded_query_vector(query, np.empty((0, 3), np.float32), 0), query)
    assert np.allclose(expanded_query_vector(query, np.stack([query, query]), 0), query, atol=1e-6)
