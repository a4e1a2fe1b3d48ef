"""Ingest benchmark: Ingest.Upsert throughput vs the embedder alone on the same items (goal >= 0.8x).

One stack (``running_stack``: embedder process + ingest/search over an empty Edge store) serves
both measurements. The embedder-only figure is Embedder.EmbedImages over the items' image bytes in
batches of ``ingest.batch_size``, one call at a time (the ingest writer keeps up to two in flight); the ingest
figure is one Ingest.Upsert stream of the same items (bytes sent, as ``services.ingest load``
does). The embedder is timed before and after the ingest and the mean is used, so a change in
machine load during the run hits both sides alike.

Writes bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.common import bench_bundle, describe_bundle, figure, finish, ratio
from bench.live import bench_stack, catalog_items, ingest
from domain.catalog import Product
from services.common.channels import open_channel
from services.common.config import load_config
from tests.support.stack import RunningStack
from vitrine.v1 import embedder_pb2, embedder_pb2_grpc

ITEMS = 2_000
GOAL_RATIO = 0.8


async def embed_only(stack: RunningStack, items: list[Product], batch_size: int) -> float:
    """Items/s of EmbedImages over the items' bytes, ``batch_size`` per call, one call in flight."""
    batches = [[p.image for p in items[i : i + batch_size]] for i in range(0, len(items), batch_size)]
    async with open_channel(stack.addr("embedder")) as channel:
        stub = embedder_pb2_grpc.EmbedderStub(channel)
        await stub.EmbedImages(embedder_pb2.EmbedImagesRequest(images=batches[0]), timeout=120)  # warm-up
        begin = time.perf_counter()
        for images in batches:
            reply = await stub.EmbedImages(embedder_pb2.EmbedImagesRequest(images=images), timeout=120)
            if len(reply.embeddings) != len(images):
                raise RuntimeError(
                    f"embedder returned {len(reply.embeddings)} embeddings for {len(images)} images"
                )
        return len(items) / (time.perf_counter() - begin)


def measure(items: list[Product], batch_size: int) -> dict[str, Any]:
    """Embedder alone, ingest, embedder alone again, on one fresh stack."""
    bundle, source = bench_bundle()
    with bench_stack(bundle) as stack:
        before = asyncio.run(embed_only(stack, items, batch_size))
        report, seconds = asyncio.run(ingest(stack, items))
        after = asyncio.run(embed_only(stack, items, batch_size))
    embed_rate = (before + after) / 2
    ingest_rate = report.upserted / seconds
    return {
        "bundle": source,
        "members": describe_bundle(bundle),
        "items": len(items),
        "batch_size": batch_size,
        "embedder_only_items_per_s": {
            "before": round(before, 1),
            "after": round(after, 1),
            "mean": round(embed_rate, 1),
        },
        "ingest_items_per_s": round(ingest_rate, 1),
        "ingest_s": round(seconds, 1),
        "collection": report.collection,
        "ratio": ratio(ingest_rate, embed_rate),
        "goal": f">= {GOAL_RATIO}",
    }


def figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """README rows for this part's result."""
    embed = result["embedder_only_items_per_s"]["mean"]
    return [
        figure(
            f"ingest / embedder-only throughput ({result['items']} items, batch {result['batch_size']})",
            f"{result['ratio']}x ({result['ingest_items_per_s']} / {embed} items/s)",
            f">= {GOAL_RATIO}x",
            result["ratio"] >= GOAL_RATIO,
        )
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure and write the result file (``--quick``: 128 items)."""
    parser = argparse.ArgumentParser(prog="python -m bench ingest")
    parser.add_argument("--quick", action="store_true", help="128 items (a smoke run)")
    args = parser.parse_args(argv or [])
    items, catalog = catalog_items(128 if args.quick else ITEMS)
    result = {"catalog": catalog, **measure(items, load_config().ingest.batch_size)}
    print(
        f"embedder alone {result['embedder_only_items_per_s']['mean']} items/s, "
        f"ingest {result['ingest_items_per_s']} items/s, ratio {result['ratio']}",
        flush=True,
    )
    result["figures"] = figures(result)
    finish("ingest", result, quick=args.quick)
    return result


if __name__ == "__main__":
    main()
