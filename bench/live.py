"""The running stack for benchmarks: catalog items in memory, a stack on free ports, bulk ingest."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

from bench.common import bench_catalog
from domain.catalog import Product, iter_catalog
from services.common.channels import open_channel
from services.ingest.core import IngestSummary
from services.ingest.loader import build_indexes_via_rpc, load_via_rpc, with_image_bytes
from tests.support.stack import RunningStack, running_stack


def catalog_items(count: int, skip: int = 0) -> tuple[list[Product], str]:
    """Catalog items ``skip .. skip+count-1`` with their image bytes read into memory, and the source.

    Reading the files first keeps disk reads out of the timed part, and gives the embedder-only and
    ingest measurements the very same bytes.
    """
    folder, source = bench_catalog(skip + count)
    items = list(with_image_bytes(islice(iter_catalog(folder), skip, skip + count)))
    missing = [p.id for p in items if not p.image]
    if len(items) < count or missing:
        raise RuntimeError(
            f"{source}: wanted {count} items with images, got {len(items)} ({missing[:5]} unread)"
        )
    return items, source


@contextmanager
def bench_stack(bundle: Path) -> Iterator[RunningStack]:
    """``python -m apps.stack`` on free ports over an empty Edge store in a temporary folder."""
    with (
        tempfile.TemporaryDirectory(prefix="vitrine-bench-stack-") as store,
        running_stack(bundle, Path(store)) as stack,
    ):
        yield stack


async def ingest(stack: RunningStack, items: list[Product]) -> tuple[IngestSummary, float]:
    """Send ``items`` (with image bytes) through Ingest.Upsert in one stream, then build the indexes
    as a load does (not timed); the report and the upload's seconds."""
    async with open_channel(stack.addr("ingest")) as channel:
        begin = time.perf_counter()
        report = await load_via_rpc(channel, items, stream_size=len(items), total=len(items))
        seconds = time.perf_counter() - begin
        await build_indexes_via_rpc(channel)
    if report.upserted != len(items):
        raise RuntimeError(f"ingest stored {report.upserted} of {len(items)} items ({report.failed} failed)")
    return report, seconds
