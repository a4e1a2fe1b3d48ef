"""A tiny real bundle for integration tests: three members trained briefly on the synthetic catalog.

``build_tiny_bundle`` is deterministic (fixed seeds) and takes well under a minute on two cores;
a query like "a red dress" ranks red dresses first with it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from training.build import build_bundle
from training.data.synthetic import write_synthetic_catalog
from training.defaults import tiny_config

log = logging.getLogger("vitrine.training.tiny")
TINY_CATALOG_SIZE = 420
# Fixed, not "whatever this process was set to": float reductions (and so the trained weights) depend
# on the thread count, and tests must get the same bundle in any order.
TINY_THREADS = 2


def build_tiny_bundle(
    directory: str | Path,
    members: Sequence[str] = ("m1", "m2", "m3"),
    steps: int = 240,
    catalog_size: int = TINY_CATALOG_SIZE,
) -> Path:
    """Train ``members`` for ``steps`` steps each on a synthetic catalog and write the bundle into ``directory``.

    The synthetic catalog is written to ``directory/catalog`` (Fashion Product Images layout), so
    tests can ingest the same products.
    """
    directory = Path(directory)
    catalog = write_synthetic_catalog(directory / "catalog", catalog_size, seed=0)
    cfg = tiny_config(tuple(members), steps)
    threads = torch.get_num_threads()
    torch.set_num_threads(TINY_THREADS)
    try:
        with tempfile.TemporaryDirectory(prefix="vitrine-tiny-") as work:
            build_bundle(cfg, catalog, directory / "bundle", Path(work), None, extra={"synthetic_data": True})
    finally:
        torch.set_num_threads(threads)
    return directory / "bundle"
