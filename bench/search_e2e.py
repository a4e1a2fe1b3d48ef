"""End-to-end text search over gRPC on CPU: Search RPC latency, embedding included.

Starts the whole stack (``running_stack``) on the bench bundle, ingests catalog items through the
Ingest RPC, then sends text queries (product names of items that were not ingested). Each query is
first embedded alone (Embedder.EmbedTexts) and then searched (Search.Search), so the embedding's
share of the end-to-end latency is measured side by side. The texts are distinct after the query
cache's normalization, so that first Search is cold (the query is embedded); the same Search sent
again right after is served from Search's query embedding cache ("repeated"), in the same run; a
third time with the dense members only (``members``, also from the cache), so the lexical member's
added cost is the paired difference of the last two.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.common import describe_bundle, summary_ms
from bench.live import bench_stack, catalog_items, ingest
from domain.bundle import load_bundle
from services.common.channels import open_channel
from services.search.query_cache import normalize_text
from tests.support.stack import RunningStack
from vitrine.v1 import embedder_pb2, embedder_pb2_grpc, search_pb2, search_pb2_grpc


async def _time_queries(stack: RunningStack, texts: list[str], dense: list[str]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {
        "embed_text": [],
        "search_rpc": [],
        "search_rpc_repeated": [],
        "search_rpc_repeated_dense_only": [],
    }
    async with (
        open_channel(stack.addr("embedder")) as embed_channel,
        open_channel(stack.addr("search")) as channel,
    ):
        embedder = embedder_pb2_grpc.EmbedderStub(embed_channel)
        search = search_pb2_grpc.SearchStub(channel)
        await search.Search(search_pb2.SearchRequest(text=texts[0], top_k=10), timeout=30)  # warm-up
        for text in tqdm(texts, desc="search rpc", unit="q", leave=False):
            begin = time.perf_counter()
            await embedder.EmbedTexts(embedder_pb2.EmbedTextsRequest(texts=[text]), timeout=30)
            middle = time.perf_counter()
            reply = await search.Search(search_pb2.SearchRequest(text=text, top_k=10), timeout=30)
            end = time.perf_counter()
            again = await search.Search(search_pb2.SearchRequest(text=text, top_k=10), timeout=30)
            repeated = time.perf_counter()
            await search.Search(search_pb2.SearchRequest(text=text, top_k=10, members=dense), timeout=30)
            dense_only = time.perf_counter()
            if reply.partial or not reply.hits:
                raise RuntimeError(f"search {text!r}: partial or empty reply; the figure would be wrong")
            if [h.id for h in again.hits] != [h.id for h in reply.hits]:
                raise RuntimeError(f"search {text!r}: the repeated query answered differently")
            times["embed_text"].append(middle - begin)
            times["search_rpc"].append(end - middle)
            times["search_rpc_repeated"].append(repeated - end)
            times["search_rpc_repeated_dense_only"].append(dense_only - repeated)
    return times


def text_search_e2e(bundle: Path, items: int, queries: int) -> dict[str, Any]:
    """Ingest ``items`` catalog items into a fresh stack, then time ``queries`` text Search RPCs."""
    products, source = catalog_items(items + queries)
    stored, held_out = products[:items], products[items:]
    texts = distinct([p.text or p.attributes.get("articleType", p.id) for p in held_out])
    with bench_stack(bundle) as stack:
        report, ingest_s = asyncio.run(ingest(stack, stored))
        times = asyncio.run(_time_queries(stack, texts, dense_members(bundle)))
    search, embed = summary_ms(times["search_rpc"]), summary_ms(times["embed_text"])
    repeated = summary_ms(times["search_rpc_repeated"])
    dense_only = summary_ms(times["search_rpc_repeated_dense_only"])
    return {
        "catalog": source,
        "members": describe_bundle(bundle),
        "items_ingested": report.upserted,
        "ingest_s": round(ingest_s, 1),
        "queries": len(texts),
        "query_text_example": texts[0],
        "search_rpc": search,
        "embed_text_rpc_alone": embed,
        "embedding_share_p50": round(embed["p50_ms"] / search["p50_ms"], 2),
        "search_rpc_repeated": repeated,
        "repeated_vs_cold_p50": round(repeated["p50_ms"] / search["p50_ms"], 3),
        "search_rpc_repeated_dense_only": dense_only,
        "lexical_added_p50_ms": round(repeated["p50_ms"] - dense_only["p50_ms"], 3),
    }


def dense_members(bundle: Path) -> list[str]:
    """The bundle's dense member names (a request naming them leaves the lexical member out)."""
    return load_bundle(bundle).member_names


def distinct(texts: list[str]) -> list[str]:
    """``texts`` without repeats as the query cache sees them (so every first Search is cold)."""
    seen: set[str] = set()
    out = []
    for text in texts:
        key = normalize_text(text)
        if key not in seen:
            seen.add(key)
            out.append(text)
    return out
