"""``make demo``: the whole product, offline, on the embedded store.

1. build or reuse the offline default ensemble bundle (``training.build_default``, cached);
2. start the stack on loopback (``apps.stack``: embedder + ingest + search over Qdrant Edge);
3. ingest the catalog from ``--data`` (the shared Fashion Product Images folder, else a generated
   synthetic catalog, said so) with a progress bar; a rerun finds it indexed and skips this;
4. run text, image and text+image queries and print the hits with member explanations;
5. print the bundle's evaluation table; stop the stack and exit 0.

The catalog is indexed into the store ``make up`` serves (``VITRINE_STORE_PATH``, default
data/store, image bytes kept in its blobs/ folder), so the demo ends by printing the one command
that serves the page and its URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc

from apps.demo_queries import run_queries
from apps.stack import _wait_upstream, browse_hint
from domain.bundle import load_bundle
from domain.payload import collection_name, holds_version
from services.common.config import PROJECT_ROOT, VitrineConfig, load_config
from services.ingest.loader import build_indexes_via_rpc, iter_catalog, load_via_rpc, with_image_bytes
from training.data.synthetic import write_synthetic_catalog
from training.queries import COLOUR_TYPE_SET, SHOPPER_SET
from vitrine.v1 import ingest_pb2, ingest_pb2_grpc

DATA_DIR = PROJECT_ROOT / "data"
TEST_REPORT = "eval-test.json"
SYNTHETIC_ITEMS = 2100


def banner(text: str) -> None:
    """A visible section title."""
    print(f"\n{'=' * 8} {text} {'=' * max(0, 70 - len(text))}", flush=True)


def resolve_catalog(data: Path) -> tuple[Path, bool]:
    """The catalog to demo on, and whether it is synthetic."""
    if (data / "styles.csv").exists():
        return data, False
    synthetic = DATA_DIR / "demo" / "synthetic-catalog"
    if not (synthetic / "styles.csv").exists():
        write_synthetic_catalog(synthetic, SYNTHETIC_ITEMS)
    print(f"NOTE: no catalog at {data}; using a generated synthetic catalog at {synthetic}", flush=True)
    return synthetic, True


def build_bundle(catalog: Path, bundle_dir: Path) -> None:
    """Run the (cached) training build, then the test-split evaluation once per bundle version."""
    cmd = [sys.executable, "-m", "training.build_default", "--data", str(catalog), "--out", str(bundle_dir)]
    subprocess.run(cmd, check=True, cwd=PROJECT_ROOT)
    if not _evaluated(bundle_dir):
        print("evaluating the bundle on the held-out test split (once per bundle version)", flush=True)
        cmd = [sys.executable, "-m", "training.evaluate", "--bundle", str(bundle_dir), "--data", str(catalog)]
        subprocess.run(cmd + ["--quiet"], check=True, cwd=PROJECT_ROOT)


def _evaluated(bundle_dir: Path) -> bool:
    """True when the bundle's test report exists and belongs to its current version."""
    path = bundle_dir / TEST_REPORT
    if not path.exists():
        return False
    version = json.loads((bundle_dir / "bundle.json").read_text())["version"]
    return json.loads(path.read_text()).get("bundle", {}).get("version") == version


async def ingest(address: str, catalog: Path, limit: int | None, canonical: str) -> None:
    """Stream the catalog through Ingest.Upsert unless this bundle version's index holds all of it.

    ``canonical`` is the collection of the served bundle version. When search still reads an index
    built by another version (the bundle was retrained), the catalog is streamed into the new
    version's collection while search keeps answering from the old one, then ``Reindex`` swaps the
    alias: an index is never searched with another bundle's vectors. ``Optimize`` then builds the
    vector indexes (without them search scans every vector).
    """
    async with grpc.aio.insecure_channel(address) as channel:
        stub = ingest_pb2_grpc.IngestStub(channel)
        total = sum(1 for _ in iter_catalog(catalog, limit))
        current = await stub.Count(ingest_pb2.CountRequest(), timeout=30)
        stale = not holds_version(current.collection, canonical)  # even when empty: the alias must move
        if current.count >= total and not stale:
            print(f"index already holds {current.count} items (catalog: {total}); reusing it", flush=True)
            await build_indexes_via_rpc(channel)  # nothing to do when built; a store loaded without: builds
            return
        if stale:
            print(
                f"search reads {current.collection}, built by another bundle version; ingesting into "
                f"{canonical}, then swapping the alias (Reindex)",
                flush=True,
            )
        started = time.perf_counter()
        report = await load_via_rpc(channel, with_image_bytes(iter_catalog(catalog, limit)), total=total)
        if stale:
            swap = await stub.Reindex(ingest_pb2.ReindexRequest(), timeout=3600)
            print(f"alias now on {swap.new_collection} (was {swap.old_collection})", flush=True)
        seconds = time.perf_counter() - started
        print(
            f"ingested {report.upserted} items ({report.failed} failed) into {report.collection} "
            f"in {seconds:.0f}s ({report.upserted / max(seconds, 1e-9):.0f} items/s)",
            flush=True,
        )
        await build_indexes_via_rpc(channel)


def print_evaluation(bundle_dir: Path) -> None:
    """Print the headline rows of the bundle's held-out test evaluation (``make evaluate`` prints all)."""
    path = bundle_dir / TEST_REPORT
    if not path.exists():
        print(f"no {TEST_REPORT} in {bundle_dir}; run `make evaluate` to produce it")
        return
    report = json.loads(path.read_text())
    sets = {
        name: rows
        for name, rows in report.get("fashion", {}).items()
        if "articleType" in name or name in (SHOPPER_SET, COLOUR_TYPE_SET)
    }
    print(
        f"{report.get('items', '?')} held-out items; mAP@10 macro / micro "
        "(article types; shopper and colour+type queries)"
    )
    names = list(sets)
    print(f"  {'system':<24}" + "".join(f"{n[:26]:>28}" for n in names))
    systems = list(next(iter(sets.values()), {}))
    for system in systems:
        cells = "".join(f"{sets[n][system]['macro']:>19.3f} / {sets[n][system]['micro']:.3f}" for n in names)
        print(f"  {system:<24}{cells}")
    print(f"full tables: make evaluate (or {path})")


def start_stack(bundle_dir: Path, store_dir: Path) -> subprocess.Popen:
    """``python -m apps.stack`` without the web gateway, logs to data/demo/stack.log."""
    log_path = DATA_DIR / "demo" / "stack.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "VITRINE_LOG_JSON": "true"}
    with log_path.open("w") as log_file:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apps.stack",
                "--bundle",
                str(bundle_dir),
                "--store",
                str(store_dir),
                "--no-web",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


async def demo(args: argparse.Namespace) -> int:
    """Run every step; returns the exit code."""
    started = time.perf_counter()
    cfg = load_config()
    catalog, synthetic = resolve_catalog(args.data)
    banner("1/5 ensemble bundle")
    if args.no_train:
        print(f"using the bundle at {args.bundle} as it is (--no-train)", flush=True)
    else:
        build_bundle(catalog, args.bundle)
    banner("2/5 start the stack (embedder + ingest + search, Qdrant Edge)")
    stack = start_stack(args.bundle, args.store)
    search_addr = f"127.0.0.1:{cfg.search_server.port}"
    try:
        await _wait_upstream(search_addr, stack, "stack (see data/demo/stack.log)", timeout_s=600)
        print(f"stack ready: search {search_addr}, ingest 127.0.0.1:{cfg.ingest_server.port}", flush=True)
        banner("3/5 ingest the catalog" + (" (synthetic)" if synthetic else ""))
        bundle = load_bundle(args.bundle)
        canonical = collection_name(cfg.store.catalog, bundle.name, bundle.version)
        await ingest(f"127.0.0.1:{cfg.ingest_server.port}", catalog, args.limit, canonical)
        banner("4/5 queries")
        ok = await run_queries(search_addr, catalog, synthetic)
        banner("5/5 evaluation of the bundle (held-out test split)")
        print_evaluation(args.bundle)
    finally:
        stack.terminate()
        stack.wait(timeout=60)
    print(f"\ndemo finished in {time.perf_counter() - started:.0f}s", flush=True)
    print_browse_hint(cfg, args.store, args.bundle)
    return 0 if ok else 1


def print_browse_hint(cfg: VitrineConfig, store: Path, bundle: Path) -> None:
    """The one command that serves the catalog just indexed, and the page's URL."""
    command = "make up"
    if (
        store.resolve() != Path(cfg.store.path).resolve()
        or bundle.resolve() != Path(cfg.embedder.bundle).resolve()
    ):
        command = f"python -m apps.stack --store {store} --bundle {bundle}"
    banner("browse the catalog")
    print(f"serve it:  {command}", flush=True)
    print(f"then open: {browse_hint(cfg)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m apps.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("VITRINE_DATA", "../shared/data/fashion-product-images")),
    )
    parser.add_argument("--bundle", type=Path, default=DATA_DIR / "bundles" / "default")
    parser.add_argument(
        "--store",
        type=Path,
        default=Path(load_config().store.path),
        help="Edge store to index into (default: the one `make up` serves, VITRINE_STORE_PATH)",
    )
    parser.add_argument("--limit", type=int, help="ingest at most this many items")
    parser.add_argument(
        "--no-train", action="store_true", help="use --bundle as it is, without the cached build step"
    )
    return asyncio.run(demo(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
