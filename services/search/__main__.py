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
import sys

from services.common.config import VitrineConfig, load_config
from services.common.logsetup import setup_logging
from services.search.cli import run_client
from services.search.service import build


async def serve(cfg: VitrineConfig) -> None:
    """Run the search server until signalled (see :func:`services.search.service.build`)."""
    await build(cfg).serve()


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
