"""Run the search service, or query it.

``python -m services.search [serve] [--port N]`` runs the server;
``python -m services.search query "red dress" --top-k 5 [--image FILE] [--filter gender=Women]
[--fusion rrf] [--explain] [--addr 127.0.0.1:50053]`` prints the hits as a table;
``python -m services.search similar ID`` does the same for more-like-this.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys

from domain.bundle import Bundle, FusionSpec, MemberSpec, load_bundle
from domain.payload import collection_name, holds_version
from domain.schema import load_schema
from services.common.config import VitrineConfig, load_config
from services.common.embed_client import EmbedderClient, EmbedderUnavailable
from services.common.logsetup import setup_logging
from services.common.server import GrpcServer, ServiceBinding
from services.search.cli import run_client
from services.search.core import SearchCore
from services.search.server import SERVICE_NAME, SearchServicer
from services.storage.factory import open_store
from vitrine.v1 import embedder_pb2, search_pb2_grpc

log = logging.getLogger("vitrine.search")
RETRY_S = (0.5, 1.0, 2.0, 5.0)


def bundle_from_info(info: embedder_pb2.BundleInfo) -> Bundle:
    """The parts of a bundle search needs (names, dims, weights, default fusion) from GetBundle."""
    members = tuple(
        MemberSpec(
            name=m.name,
            arch=m.arch,
            dim=m.dim,
            image_size=m.image_size or 224,
            pretrained=m.pretrained,
            weight=m.weight,
        )
        for m in info.members
    )
    fusion = FusionSpec(method=info.default_fusion) if info.default_fusion else FusionSpec()
    return Bundle(name=info.name, version=info.version, members=members, fusion=fusion)


async def fetch_bundle(cfg: VitrineConfig, embedder: EmbedderClient) -> Bundle:
    """The embedder's bundle (retried while it starts); a configured bundle file must match it."""
    attempt = 0
    while True:
        try:
            info = await embedder.bundle_info()
            break
        except EmbedderUnavailable as exc:
            delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
            log.warning("embedder not ready, retrying", extra={"error": str(exc), "retry_in_s": delay})
            await asyncio.sleep(delay)
            attempt += 1
    served = bundle_from_info(info)
    if not cfg.search.bundle:
        return served
    bundle = load_bundle(cfg.search.bundle)
    if (bundle.name, bundle.version, bundle.member_names) != (
        served.name,
        served.version,
        served.member_names,
    ):
        raise RuntimeError(
            f"search bundle {bundle.name}-{bundle.version} {list(bundle.member_names)} differs from the "
            f"embedder's {served.name}-{served.version} {list(served.member_names)}; serve the same bundle"
        )
    return bundle


async def serve(cfg: VitrineConfig) -> None:
    """Start (NOT_SERVING), learn the bundle, open the store, report SERVING, run until signalled."""
    servicer = SearchServicer()
    server = GrpcServer(
        cfg.search_server,
        [ServiceBinding(SERVICE_NAME, search_pb2_grpc.add_SearchServicer_to_server, servicer)],
    )
    server.install_signal_handlers()
    port = await server.start()
    embedder = EmbedderClient.connect(
        cfg.search.embedder_addr,
        cfg.search.rpc_timeout_s,
        tls_ca=cfg.search.embedder_tls_ca,
        auth_token=cfg.search.embedder_auth_token,
        wait_for_ready=False,
    )
    store = None
    schema = load_schema(cfg.catalog.schema)  # a bad schema file stops startup, naming the key
    try:
        bundle = await fetch_bundle(cfg, embedder)
        store = await asyncio.to_thread(open_store, cfg.store)
        expected = collection_name(cfg.store.catalog, bundle.name, bundle.version)
        target = await asyncio.to_thread(store.resolve_alias, cfg.store.catalog)
        if not holds_version(target, expected):
            log.warning(
                "catalog alias does not point at this bundle's collection",
                extra={"alias": cfg.store.catalog, "target": target, "expected": expected},
            )
        servicer.core = SearchCore(cfg.search, store, bundle, embedder, cfg.store.catalog, schema)
        await server.set_serving(True)
        log.info("search ready", extra={"port": port, "bundle": f"{bundle.name}-{bundle.version}"})
        await server.wait_for_termination()
    finally:
        await embedder.close()
        if store is not None:
            store.close()


def add_query_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``query`` and ``similar``."""
    parser.add_argument("--top-k", type=int, default=0, help="hits to return (0 = server default)")
    parser.add_argument("--offset", type=int, default=0, help="pagination offset")
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="payload filter, repeatable; VALUE may be a|b",
    )
    parser.add_argument(
        "--fusion", default="", help="rrf | weighted_rrf | combsum | combmnz | borda | single:<member>"
    )
    parser.add_argument("--member", action="append", default=[], help="query only this member (repeatable)")
    parser.add_argument("--explain", action="store_true", help="show each member's rank")
    parser.add_argument("--min-score", type=float, default=0.0, help="drop hits scoring below this")
    parser.add_argument("--addr", default="127.0.0.1:50053", help="search server address")
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds")
    parser.add_argument("--tls-ca", default="", help="CA file: connect over TLS")
    parser.add_argument("--token", default="", help="bearer token (needs --tls-ca)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Subcommands ``serve`` (the default), ``query`` and ``similar``."""
    parser = argparse.ArgumentParser(
        prog="python -m services.search",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command")
    serve_cmd = commands.add_parser("serve", help="run the search server (default)")
    serve_cmd.add_argument(
        "--config", help="TOML config file (default: $VITRINE_CONFIG or config/vitrine.toml)"
    )
    serve_cmd.add_argument("--host", help="bind address")
    serve_cmd.add_argument("--port", type=int, help="port (default 50053; 0 picks a free one)")
    serve_cmd.add_argument("--embedder", help="embedder address (default VITRINE_SEARCH_EMBEDDER_ADDR)")
    query = commands.add_parser("query", help="text and/or image search")
    query.add_argument("text", nargs="?", default="", help="query text")
    query.add_argument("--image", help="image file to search with")
    query.add_argument(
        "--text-weight", type=float, help="0..1 share of the text when text and image are given"
    )
    query.add_argument("--cluster-rerank", action="store_true", help="ENCLIP cluster-aware re-rank")
    query.add_argument(
        "--mmr", type=float, default=0.0, metavar="LAMBDA", help="MMR diversification (0 = off)"
    )
    query.add_argument("--max-per-cluster", type=int, default=0, help="cap hits per cluster (0 = off)")
    add_query_args(query)
    similar = commands.add_parser("similar", help="more like a stored product")
    similar.add_argument("id", help="product id")
    similar.add_argument("--include-self", action="store_true", help="keep the product itself")
    add_query_args(similar)
    if not argv or argv[0] not in {*commands.choices, "-h", "--help"}:
        argv = ["serve", *argv]  # no subcommand: run the server
    return parser.parse_args(argv)


def configure(args: argparse.Namespace) -> VitrineConfig:
    """Config file + env, then the ``serve`` command-line overrides."""
    cfg = load_config(args.config)
    server_cfg = dataclasses.replace(
        cfg.search_server,
        **{k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None},
    )
    search_cfg = dataclasses.replace(cfg.search, embedder_addr=args.embedder or cfg.search.embedder_addr)
    return dataclasses.replace(cfg, search_server=server_cfg, search=search_cfg)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command in ("query", "similar"):
        sys.exit(run_client(args))
    cfg = configure(args)
    setup_logging(cfg.log_level, cfg.log_json)
    asyncio.run(serve(cfg))


if __name__ == "__main__":
    main()
