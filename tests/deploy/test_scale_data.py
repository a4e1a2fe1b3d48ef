"""The scale curve's synthetic catalog: a profile fitted to vectors draws vectors that spread like
them, chunk by chunk and reproducibly; the committed profile matches the default bundle's members."""

from __future__ import annotations

import numpy as np
import pytest

from bench.scale_data import CHUNK, ChunkedDataset, exact_top_k
from bench.scale_profile import PROFILE_PATH, fit_profile, load_profiles, save_profiles


def participation_ratio(vectors: np.ndarray) -> float:
    """How many dimensions carry the variance (sum of eigenvalues squared over sum of squares)."""
    eigen = np.clip(np.linalg.eigvalsh(np.cov((vectors - vectors.mean(0)).T)), 0, None)
    return float(eigen.sum() ** 2 / (eigen**2).sum())


def low_rank_catalog(n: int = 3000, dim: int = 32, rank: int = 4, seed: int = 0) -> np.ndarray:
    """Unit vectors that vary along ``rank`` directions only, plus a common mean."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, rank)))[0]
    vectors = 2.0 * rng.normal(size=dim) / np.sqrt(dim) + rng.normal(size=(n, rank)) @ basis.T * 0.3
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_a_profile_draws_vectors_that_spread_like_the_ones_it_was_fitted_to(tmp_path):
    real = low_rank_catalog()
    profile = fit_profile(real, components=16)
    assert profile.dim == 32 and abs(sum(profile.weights) - 1) < 1e-3
    save_profiles({"m": profile}, tmp_path / "p.json", "test")
    data = ChunkedDataset(4000, {"m": 32}, seed=1, profiles=load_profiles(tmp_path / "p.json"))
    drawn = data.chunk(0).vectors["m"]
    assert drawn.shape == (4000, 32)
    assert np.allclose(np.linalg.norm(drawn, axis=1), 1, atol=1e-5)
    # about as few dimensions carry the variance as in the fitted vectors; isotropic draws use them all
    assert participation_ratio(drawn) < 2 * participation_ratio(real)
    isotropic = ChunkedDataset(4000, {"m": 32}, seed=1).chunk(0).vectors["m"]
    assert participation_ratio(isotropic) > 4 * participation_ratio(real)


def test_chunks_and_queries_are_reproducible_and_exact_search_finds_the_nearest():
    profiles = load_profiles(PROFILE_PATH)
    dims = {m: p.dim for m, p in profiles.items()}
    data = ChunkedDataset(CHUNK + 500, dims, seed=3, profiles=profiles)
    again = ChunkedDataset(CHUNK + 500, dims, seed=3, profiles=profiles)
    assert np.array_equal(data.chunk(1).vectors["m1"], again.chunk(1).vectors["m1"])
    assert len(data.chunk(1)) == 500 and data.chunk(1).start == CHUNK
    queries = data.queries(3)
    assert np.array_equal(queries[0]["m2"], again.queries(3)[0]["m2"])
    top = exact_top_k(data, queries, 5)
    whole = np.concatenate([c.vectors["m1"] for c in data.chunks()])
    for query, found in zip(queries, top, strict=True):
        best = np.argsort(-(whole @ query["m1"]))[:5]
        assert found["m1"] == {str(i) for i in best}


def test_the_scale_curve_draws_the_profiled_members_at_their_dims():
    from bench.search_1m import profiled_dims

    profiles = load_profiles(PROFILE_PATH)
    dims = profiled_dims()
    assert dims and set(dims) == set(profiles)
    data = ChunkedDataset(8, dims, profiles=profiles)
    for name, vectors in next(iter(data.chunks())).vectors.items():
        assert vectors.shape[1] == profiles[name].dim == dims[name]


def test_a_profile_that_does_not_fit_the_members_is_refused():
    profiles = load_profiles(PROFILE_PATH)
    with pytest.raises(ValueError, match="no profile for member 'x'"):
        ChunkedDataset(10, {"x": 128}, profiles=profiles)
    with pytest.raises(ValueError, match="member 'm1' has dim 64, its profile 128"):
        ChunkedDataset(10, {"m1": 64}, profiles=profiles)
