"""Fixtures of the reliability suite: an image root with a way out of it, and the in-process stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.harness import inprocess_stack
from tests.support.images import solid


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    """``images/`` with one good image and a symlink that escapes to ``secret.jpg`` beside it."""
    root = tmp_path / "images"
    root.mkdir()
    (root / "ok.jpg").write_bytes(solid((10, 160, 40)))
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(solid((1, 2, 3)))
    (root / "escape.jpg").symlink_to(secret)
    return root


@pytest.fixture
async def stack(encoder, random_bundle, tmp_path, image_root):
    """Embedder, ingest and search in this process (4 MiB message limit) over an Edge store in tmp_path."""
    async with inprocess_stack(
        encoder, random_bundle, tmp_path / "store", image_root, max_message_mb=4
    ) as running:
        yield running
