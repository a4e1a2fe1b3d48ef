"""Run ingest, or load a catalog folder.

python -m services.ingest [serve] [--port N] [--bundle PATH]   run the Ingest gRPC server
python -m services.ingest load DIR [--limit N] [--direct]       load a catalog (resumable), then
                                                                build the indexes (--no-optimize: not)
python -m services.ingest load DIR --bulk                       index once at the end (large catalogs)
python -m services.ingest collections                           list collections and the alias
python -m services.ingest drop NAME                             drop an old collection
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys

from domain.bundle import load_bundle
from services.common.channels import open_channel
from services.common.config import VitrineConfig, load_config
from services.common.logsetup import setup_logging
from services.ingest.loader import (
    build_indexes_via_rpc,
    iter_catalog,
    load_direct,
    load_via_rpc,
    with_image_bytes,
)
from services.ingest.service import build, build_core, check_embedder_bundle, embedder_client
from services.storage.factory import open_store

COMMANDS = ("serve", "load", "collections", "optimize", "drop")


async def serve(cfg: VitrineConfig) -> None:
    """Run the ingest server until signalled (see :func:`services.ingest.service.build`)."""
    await build(cfg).serve()


async def load(cfg: VitrineConfig, args: argparse.Namespace) -> None:
    """Load a catalog folder through the Ingest RPC, or straight into a core (``--direct``; ``--bulk``:
    straight into a core with index building off during the upload, then one build)."""
    total = sum(1 for _ in iter_catalog(args.directory, args.limit))
    products = iter_catalog(args.directory, args.limit)
    if args.direct or args.bulk:
        cfg = dataclasses.replace(
            cfg, ingest=dataclasses.replace(cfg.ingest, allowed_image_root=args.directory)
        )
        store = open_store(cfg.store)
        client = embedder_client(cfg)
        try:
            bundle = load_bundle(cfg.embedder.bundle)
            await check_embedder_bundle(client, bundle)
            core = build_core(cfg, store, bundle, client)
            await asyncio.to_thread(core.open)
            report = await load_direct(core, products, total=total, bulk=args.bulk)
        finally:
            await client.close()
            store.close()
    else:
        address = args.addr or f"{cfg.ingest_server.host}:{cfg.ingest_server.port}"
        if args.send == "bytes":
            products = with_image_bytes(products)
        async with open_channel(address) as channel:
            report = await load_via_rpc(channel, products, stream_size=args.stream_size, total=total)
            if not args.no_optimize:
                await build_indexes_via_rpc(channel)
    print(
        f"received={report.received} upserted={report.upserted} failed={report.failed} "
        f"skipped={report.skipped} collection={report.collection}"
    )


def manage(cfg: VitrineConfig, args: argparse.Namespace) -> None:
    """``collections``, ``optimize`` and ``drop`` work on the store directly (stop the server first for Edge)."""
    store = open_store(cfg.store)
    try:
        current = store.resolve_alias(cfg.store.catalog)
        if args.command == "collections":
            for name in store.collections():
                marker = f"  <- {cfg.store.catalog}" if name == current else ""
                print(f"{name}  {store.count(name)} points{marker}")
            return
        if args.command == "optimize":
            name = args.name or cfg.store.catalog
            store.optimize(name)
            store.flush()
            print(f"optimized {name}")
            return
        if args.name == current:
            raise SystemExit(f"{args.name} is what alias {cfg.store.catalog!r} serves; reindex first")
        store.drop_collection(args.name)
        print(f"dropped {args.name}")
    finally:
        store.close()


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Sub-commands; without one, ``serve`` is assumed (``python -m services.ingest --port N``)."""
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML config file (default: $VITRINE_CONFIG or config/vitrine.toml)")
    common.add_argument("--store", help="Edge data directory (default: VITRINE_STORE_PATH)")
    common.add_argument("--bundle", help="bundle directory (default: VITRINE_EMBEDDER_BUNDLE)")
    parser = argparse.ArgumentParser(
        prog="python -m services.ingest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", parents=[common], help="run the Ingest gRPC server")
    serve_cmd.add_argument("--host", help="bind address")
    serve_cmd.add_argument("--port", type=int, help="port (default 50052; 0 picks a free one)")
    load_cmd = commands.add_parser("load", parents=[common], help="bulk load a catalog folder (resumable)")
    load_cmd.add_argument("directory", help="styles.csv + images/, or catalog.jsonl/catalog.csv + images")
    load_cmd.add_argument("--limit", type=int, help="load only the first N products")
    load_cmd.add_argument("--addr", help="ingest server host:port (default from config)")
    load_cmd.add_argument(
        "--send",
        choices=("bytes", "uri"),
        default="bytes",
        help="send image bytes (default) or paths the server reads",
    )
    load_cmd.add_argument("--stream-size", type=int, default=2000, help="products per Upsert stream")
    load_cmd.add_argument(
        "--direct", action="store_true", help="write the store from this process (no ingest server)"
    )
    load_cmd.add_argument(
        "--bulk",
        action="store_true",
        help="large catalogs: write the store from this process (as --direct) with index building off "
        "during the upload, then build the index once",
    )
    load_cmd.add_argument(
        "--no-optimize",
        action="store_true",
        help="through the RPC: leave the index build (Ingest.Optimize) for later, e.g. after more loads",
    )
    commands.add_parser("collections", parents=[common], help="list collections and the alias target")
    optimize_cmd = commands.add_parser("optimize", parents=[common], help="build indexes of a collection")
    optimize_cmd.add_argument("name", nargs="?", help="collection or alias (default: the catalog alias)")
    drop_cmd = commands.add_parser(
        "drop", parents=[common], help="drop a collection the alias does not serve"
    )
    drop_cmd.add_argument("name")
    return parser.parse_args(argv)


def configure(args: argparse.Namespace) -> VitrineConfig:
    """Config file + env, then command-line overrides."""
    cfg = load_config(args.config)
    if getattr(args, "bundle", None):
        cfg = dataclasses.replace(cfg, embedder=dataclasses.replace(cfg.embedder, bundle=args.bundle))
    if getattr(args, "store", None):
        cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, path=args.store))
    overrides = {k: getattr(args, k, None) for k in ("host", "port")}
    server = dataclasses.replace(cfg.ingest_server, **{k: v for k, v in overrides.items() if v is not None})
    return dataclasses.replace(cfg, ingest_server=server)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    cfg = configure(args)
    setup_logging(cfg.log_level, cfg.log_json)
    if args.command == "serve":
        asyncio.run(serve(cfg))
    elif args.command == "load":
        asyncio.run(load(cfg, args))
    else:
        manage(cfg, args)


if __name__ == "__main__":
    main()
