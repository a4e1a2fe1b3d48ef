"""Shared fixtures: tiny bundles and real embedder servers on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.support.bundles import make_random_bundle

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

SHARED_DATA = Path(os.environ.get("VITRINE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-product-images"))


@pytest.fixture(scope="session")
def random_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-member random-init bundle (CLIP + CustomTextCLIP), built once per session."""
    return make_random_bundle(tmp_path_factory.mktemp("random-bundle"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared Fashion Product Images folder, or skip when it is absent."""
    if not (SHARED_DATA / "styles.csv").exists():
        pytest.skip(f"shared catalog not found at {SHARED_DATA}")
    return SHARED_DATA
