"""Command-line client of the Search service: build a request, call it, print a readable table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

import grpc

from services.search.requests import parse_filters, request_options
from vitrine.v1 import search_pb2, search_pb2_grpc

NAME_KEYS = ("productDisplayName", "text")
NAME_WIDTH = 40


def cli_options(args: argparse.Namespace) -> dict[str, object]:
    """The options ``query`` and ``similar`` share, from their arguments (``--filter FIELD=VALUE``)."""
    return request_options(
        top_k=args.top_k,
        offset=args.offset,
        filters=parse_filters(args.filter),
        fusion=args.fusion,
        members=args.member,
        explain=args.explain,
        min_score=args.min_score,
    )


def search_request(args: argparse.Namespace) -> search_pb2.SearchRequest:
    """A SearchRequest from the ``query`` subcommand's arguments."""
    request = search_pb2.SearchRequest(
        text=args.text or "",
        image=Path(args.image).read_bytes() if args.image else b"",
        cluster_rerank=args.cluster_rerank,
        mmr_lambda=args.mmr,
        max_per_cluster=args.max_per_cluster,
        **cli_options(args),
    )
    if args.text_weight is not None:
        request.text_weight = args.text_weight
    return request


def similar_request(args: argparse.Namespace) -> search_pb2.MoreLikeThisRequest:
    """A MoreLikeThisRequest from the ``similar`` subcommand's arguments."""
    return search_pb2.MoreLikeThisRequest(id=args.id, include_self=args.include_self, **cli_options(args))


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(response: search_pb2.SearchResponse, explain: bool, offset: int = 0) -> str:
    """Hits as aligned columns: rank, id, score, name, articleType, colour (+ member ranks)."""
    header = ["#", "id", "score", "name", "articleType", "colour"] + (["members"] if explain else [])
    rows = [header]
    for position, hit in enumerate(response.hits, start=offset + 1):
        attrs = hit.attributes
        name = next((attrs[k] for k in NAME_KEYS if attrs.get(k)), "")
        row = [str(position), hit.id, f"{hit.score:.4f}", _clip(name, NAME_WIDTH)]
        row += [attrs.get("articleType", ""), attrs.get("baseColour", "")]
        if explain:
            row.append(" ".join(f"{m.member}:#{m.rank}" for m in hit.members) or "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    footer = f"{len(response.hits)} hits, fusion={response.fusion}, collection={response.collection}"
    if response.partial:
        footer += f", PARTIAL (missing: {', '.join(response.missing_members)})"
    return "\n".join([*lines, footer])


def open_client_channel(addr: str, tls_ca: str = "", token: str = "") -> grpc.Channel:
    """A blocking channel to the search server (TLS with ``tls_ca``; bearer ``token`` needs TLS)."""
    if not tls_ca:
        if token:
            raise ValueError("--token needs --tls-ca so the token is not sent in plaintext")
        return grpc.insecure_channel(addr)
    creds = grpc.ssl_channel_credentials(root_certificates=Path(tls_ca).read_bytes())
    if token:
        creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(token))
    return grpc.secure_channel(addr, creds)


def run_client(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run ``query``/``similar``; print the table, or the status and message. Returns the exit code."""
    try:
        request = search_request(args) if args.command == "query" else similar_request(args)
        channel = open_client_channel(args.addr, args.tls_ca, args.token)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    with channel:
        stub = search_pb2_grpc.SearchStub(channel)
        call = stub.Search if args.command == "query" else stub.MoreLikeThis
        try:
            response = call(request, timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"error: {exc.code().name}: {exc.details()}", file=err)
            return 1
    print(format_table(response, args.explain, args.offset), file=out)
    return 0


__all__ = ["cli_options", "format_table", "run_client", "search_request", "similar_request"]
