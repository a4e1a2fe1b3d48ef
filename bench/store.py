"""Storage benchmark: Qdrant Edge vs qdrant-client local mode on the same data, Edge at catalog size.

1. Same data, both backends (N=10k, 3 named vectors x 256, cosine): upsert points/s in batches
   of 256, and latency of the 3-member ``store.query`` (100 hits per member, as search asks for a
   first page) with and without a payload filter. Queries alternate between the backends. Edge is
   measured as loaded (no ``optimize``: exact search, like local mode).
2. Edge at the catalog's size (40,441 shared + 4,000 held back = 44,441 items): upsert, query
   latency searching exactly, ``optimize()`` time (HNSW build), then latency and recall@10 with
   the index.

Writes bench/results/store.json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from bench.common import figure, finish, ratio
from bench.vectors import (
    BENCH_FILTER,
    MEMBERS,
    QUERY_LIMIT,
    UPSERT_BATCH,
    Dataset,
    build_index,
    edge_store,
    index_label,
    interleaved_latency,
    load,
    local_store,
    make_dataset,
    recall_at,
)

DIM = 256
COMPARE_N = 10_000
CATALOG_N = 44_441
COLLECTION = "bench"


def both_backends(data: Dataset, queries: int) -> dict[str, Any]:
    """Upsert and query the same data on Edge and local mode; the Edge/local ratios."""
    sample = data.queries(queries)
    with tempfile.TemporaryDirectory(prefix="vitrine-bench-store-") as tmp:
        stores = {"edge": edge_store(Path(tmp)), "local": local_store()}
        try:
            upsert = {name: load(store, COLLECTION, data, name) for name, store in stores.items()}
            plain = interleaved_latency(stores, COLLECTION, sample, None)
            filtered = interleaved_latency(stores, COLLECTION, sample, BENCH_FILTER)
        finally:
            for store in stores.values():
                store.close()
    per_backend = {
        name: {
            "upsert_points_per_s": round(upsert[name], 1),
            "query": plain[name],
            "query_filtered": filtered[name],
        }
        for name in stores
    }
    return {
        "n": data.n,
        **per_backend,
        "edge_vs_local": {
            "upsert_ratio": ratio(upsert["edge"], upsert["local"]),
            "query_speedup_p50": ratio(plain["local"]["p50_ms"], plain["edge"]["p50_ms"]),
            "query_speedup_p99": ratio(plain["local"]["p99_ms"], plain["edge"]["p99_ms"]),
            "filtered_speedup_p50": ratio(filtered["local"]["p50_ms"], filtered["edge"]["p50_ms"]),
            "filtered_speedup_p99": ratio(filtered["local"]["p99_ms"], filtered["edge"]["p99_ms"]),
        },
    }


def edge_catalog(data: Dataset, queries: int) -> dict[str, Any]:
    """Edge at catalog size: exact search as loaded, the HNSW build, then indexed search and recall."""
    sample = data.queries(queries, seed=2)
    with tempfile.TemporaryDirectory(prefix="vitrine-bench-store-") as tmp:
        store = edge_store(Path(tmp))
        try:
            rate = load(store, COLLECTION, data, "edge")
            stores = {"edge": store}
            exact = {
                "query": interleaved_latency(stores, COLLECTION, sample, None)["edge"],
                "query_filtered": interleaved_latency(stores, COLLECTION, sample, BENCH_FILTER)["edge"],
            }
            build = build_index(store, COLLECTION)
            indexed = {
                "query": interleaved_latency(stores, COLLECTION, sample, None)["edge"],
                "query_filtered": interleaved_latency(stores, COLLECTION, sample, BENCH_FILTER)["edge"],
                "recall_at_10": round(recall_at(store, COLLECTION, data, sample[:100]), 4),
            }
        finally:
            store.close()
    return {"n": data.n, "upsert_points_per_s": round(rate, 1), "exact": exact, **build, "indexed": indexed}


def figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """README rows for this part's result."""
    same, catalog = result["same_data"], result["edge_catalog"]
    n, big = f"{same['n'] // 1000}k", f"{catalog['n'] / 1000:.1f}k"
    versus, edge, local = same["edge_vs_local"], same["edge"], same["local"]
    indexed = catalog["indexed"]
    return [
        figure(
            f"store upsert, Edge / local mode ({n} x 3 x {DIM}, batches of {UPSERT_BATCH})",
            f"{versus['upsert_ratio']}x ({edge['upsert_points_per_s']:.0f} / {local['upsert_points_per_s']:.0f} points/s)",
        ),
        figure(
            f"store 3-member query, local / Edge p50 ({n}, both exact)",
            f"{versus['query_speedup_p50']}x ({local['query']['p50_ms']} / {edge['query']['p50_ms']} ms)",
        ),
        figure(
            f"store filtered query, local / Edge p50 ({n}, both exact)",
            f"{versus['filtered_speedup_p50']}x "
            f"({local['query_filtered']['p50_ms']} / {edge['query_filtered']['p50_ms']} ms)",
        ),
        figure(f"Edge optimize() ({big} x 3 x {DIM}, {index_label(catalog)})", f"{catalog['optimize_s']} s"),
        figure(
            f"Edge 3-member query p50 / p99, before optimize(): exact ({big})",
            f"{catalog['exact']['query']['p50_ms']} / {catalog['exact']['query']['p99_ms']} ms",
        ),
        figure(
            f"Edge 3-member query p50 / p99, after optimize() ({big})",
            f"{indexed['query']['p50_ms']} / {indexed['query']['p99_ms']} ms",
        ),
        figure(f"Edge recall@10 after optimize() vs exact numpy ({big})", indexed["recall_at_10"]),
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both measurements and write the result file (``--quick``: small sizes, for checking)."""
    parser = argparse.ArgumentParser(prog="python -m bench store")
    parser.add_argument("--quick", action="store_true", help="1k/3k items, few queries (a smoke run)")
    args = parser.parse_args(argv or [])
    compare_n, catalog_n, queries = (1_000, 3_000, 20) if args.quick else (COMPARE_N, CATALOG_N, 200)
    compare_data = make_dataset(compare_n, DIM)
    same = both_backends(compare_data, queries=queries // 2)
    print(f"same data, {compare_n} items: {same['edge_vs_local']}", flush=True)
    catalog = edge_catalog(make_dataset(catalog_n, DIM, seed=1), queries=queries)
    print(f"edge {catalog_n}: optimize {catalog['optimize_s']} s, indexed {catalog['indexed']}", flush=True)
    result = {
        "setup": {
            "members": list(MEMBERS),
            "dim": DIM,
            "upsert_batch": UPSERT_BATCH,
            "query_limit_per_member": QUERY_LIMIT,
            "filter": {k: list(v) for k, v in BENCH_FILTER.items()},
            "filter_matches": f"{compare_data.matches(BENCH_FILTER)} of {compare_n}",
            "local_mode": "qdrant-client QdrantClient(':memory:')",
            "edge_same_data": "as loaded, no optimize(): exact search, like local mode",
        },
        "same_data": same,
        "edge_catalog": catalog,
    }
    result["figures"] = figures(result)
    finish("store", result, quick=args.quick)
    return result


if __name__ == "__main__":
    main()
