"""Search benchmark: fused query latency after embedding, Edge vs local mode, index build scaling, and
end-to-end text search over gRPC.

1. Catalog size (44,441 items x 3 members x 256, Edge, HNSW built): ``SearchCore.search_vectors``
   latency (top_k 10) for rrf (fused by the store in one call), rrf + explain, weighted_rrf and
   combsum (fused in Python over the member lists), rrf + cluster re-rank and rrf + a filter; then
   a shop's filters through the schema's payload indexes, each query run unfiltered, with a brand
   keyword filter and with brand + a price range in turn (goal: filtered p99 <= 10 ms); and
   MoreLikeThis with image query expansion off and on, in turn per item.
2. Edge vs qdrant-client local mode on the same data through the same core (rrf; weighted_rrf too
   at catalog size), at 10k (Edge unindexed: both exact) and at 44,441 (Edge indexed, local mode
   exact: it has no index).
3. Scale probe: 100k items x 3 x 64 on Edge: optimize() time, fused latency, and the 1M build
   extrapolated from it (``python -m bench search-1m`` measures 1M itself; it is opt-in).
4. End to end: text Search RPCs against the running stack (see :mod:`bench.search_e2e`), each
   text cold (embedded) and then repeated (from Search's query embedding cache).

Writes bench/results/search.json.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
from pathlib import Path
from typing import Any

from bench.common import bench_bundle, figure, finish, ratio
from bench.fused import (
    SHOP_BRANDS,
    SHOP_FILTERS,
    SHOP_PRICE,
    VARIANTS,
    expansion_latency,
    fused_latency,
    paired_latency,
    search_core,
)
from bench.search_e2e import text_search_e2e
from bench.vectors import (
    BENCH_FILTER,
    PLAIN_INDEXES,
    Dataset,
    build_index,
    edge_store,
    filtered_recall_at,
    index_label,
    load,
    local_store,
    make_dataset,
)
from services.common.config import StoreConfig
from services.search.core import SearchCore
from services.storage.port import Condition

DIM = 256
CATALOG_N = 44_441
COMPARE_N = 10_000
SCALE_N, SCALE_DIM, FULL_N = 100_000, 64, 1_000_000
GOAL_P50_MS = 5.0
GOAL_SPEEDUP = 20.0
GOAL_COLD_MS, GOAL_REPEATED_MS = 20.0, 5.0  # text Search RPC p50, end to end
GOAL_FILTERED_P99_MS = 10.0
GOAL_FILTERED_RECALL = 0.99  # recall@10 of filtered search against exact filtered search
GOAL_LEXICAL_ADDED_MS = 2.0  # the lexical member's added Search p50
COLLECTION = "bench"
RECALL_QUERIES = 50


def catalog_size(data: Dataset, queries: int, local_queries: int) -> dict[str, Any]:
    """Every fusion variant on indexed Edge, then Edge vs local mode (rrf) on the same data."""
    sample = data.queries(queries)
    with tempfile.TemporaryDirectory(prefix="vitrine-bench-search-") as tmp:
        edge, local = edge_store(Path(tmp)), local_store()
        try:
            load(edge, COLLECTION, data, "edge")
            build = build_index(edge, COLLECTION)
            edge_core = search_core(edge, COLLECTION, data.dims)
            variants = {
                name: fused_latency({"edge": edge_core}, sample, options)["edge"]
                for name, options in VARIANTS.items()
            }
            shop = shop_filters(edge_core, data, sample)
            similar = [str(i) for i in range(0, data.n, max(1, data.n // queries))][:queries]
            expansion = expansion_latency(edge, COLLECTION, data.dims, similar)
            shop["layouts"] = layouts_versus_plain(edge_core, data, sample, Path(tmp))
            load(local, COLLECTION, data, "local")
            cores = {"edge": edge_core, "local": search_core(local, COLLECTION, data.dims)}
            versus = fused_latency(cores, sample[:local_queries], VARIANTS["rrf"])
            versus_here = fused_latency(cores, sample[:local_queries], VARIANTS["weighted_rrf"])
        finally:
            edge.close()
            local.close()
    return {
        "n": data.n,
        "dim": data.dim,
        **build,
        "edge_variants": variants,
        "shop_filters": shop,
        "image_expansion": expansion,
        "edge_vs_local_rrf": _speedup(versus),
        "edge_vs_local_weighted_rrf": _speedup(versus_here),
    }


def shop_filters(core: SearchCore, data: Dataset, sample: list[dict[str, Any]]) -> dict[str, Any]:
    """Unfiltered vs brand vs brand + price range, side by side per query, and what they select."""
    page = asyncio.run(core.search_vectors(sample[0], SHOP_FILTERS["brand+price"]))
    low, high = SHOP_PRICE
    if not all(
        h.attributes["brand"] in SHOP_BRANDS and low <= float(h.attributes["price"]) <= high
        for h in page.hits
    ):
        raise RuntimeError("the filtered query returned items outside its filters; the figure would be wrong")
    latency = paired_latency(core, sample, SHOP_FILTERS)
    matching = data.shop_matches(SHOP_BRANDS, *SHOP_PRICE)
    return {
        "filters": f"brand in {list(SHOP_BRANDS)}; brand and price in [{SHOP_PRICE[0]:g}, {SHOP_PRICE[1]:g}]",
        "indexes": "brand keyword (tenant layout: payload links), price float (principal layout), from the schema",
        "brand_price_matching": matching,
        "brand_price_share": round(matching / data.n, 4),
        **latency,
        "p99_ratio_brand_price": ratio(latency["brand+price"]["p99_ms"], latency["unfiltered"]["p99_ms"]),
    }


def layouts_versus_plain(
    core: SearchCore, data: Dataset, sample: list[dict[str, Any]], root: Path
) -> dict[str, Any]:
    """Brand + price on two shards of the same data, each query on both in turn: the schema's
    tenant/principal layouts with the default store settings (payload links for the tenant field,
    a 1,000 KB full-scan threshold), and plain payload indexes (no links: the filter is scanned);
    with recall@10 against exact filtered search, also for a selective filter on untenanted fields
    (planned per query: scanned, see services/storage/scan_plan.py)."""
    plain = edge_store(root / "plain")
    try:
        load(plain, COLLECTION, data, "edge, plain indexes", indexes=PLAIN_INDEXES)
        build_index(plain, COLLECTION)
        cores = {"laid_out": core, "plain": search_core(plain, COLLECTION, data.dims)}
        latency = fused_latency(cores, sample, SHOP_FILTERS["brand+price"])
        shop = {
            "brand": tuple(SHOP_BRANDS),
            "price": Condition(kind="float", gte=SHOP_PRICE[0], lte=SHOP_PRICE[1]),
        }
        passing, other = data.shop_mask(SHOP_BRANDS, *SHOP_PRICE), data.mask(BENCH_FILTER)
        probe = sample[:RECALL_QUERIES]
        recall = {
            "laid_out": filtered_recall_at(core.store, COLLECTION, data, probe, shop, passing),
            "plain": filtered_recall_at(plain, COLLECTION, data, probe, shop, passing),
            "laid_out_other_filter": filtered_recall_at(
                core.store, COLLECTION, data, probe, BENCH_FILTER, other
            ),
        }
    finally:
        plain.close()
    defaults = StoreConfig()
    return {
        "layouts": "brand keyword tenant, price float principal",
        "settings": (
            f"hnsw_payload_m {defaults.hnsw_payload_m} (links for tenant fields only), "
            f"hnsw_full_scan_threshold_kb {defaults.hnsw_full_scan_threshold_kb}, "
            f"hnsw_unlinked_scan_threshold_kb {defaults.hnsw_unlinked_scan_threshold_kb}"
        ),
        **latency,
        "recall_at_10": {name: round(value, 4) for name, value in recall.items()},
        "other_filter": f"{dict(BENCH_FILTER)} ({int(other.sum())} items), names no tenant field",
        "p50_ratio": ratio(latency["laid_out"]["p50_ms"], latency["plain"]["p50_ms"]),
        "p99_ratio": ratio(latency["laid_out"]["p99_ms"], latency["plain"]["p99_ms"]),
    }


def same_size_exact(data: Dataset, queries: int) -> dict[str, Any]:
    """Edge as loaded (exact search) vs local mode through the same core, rrf."""
    with tempfile.TemporaryDirectory(prefix="vitrine-bench-search-") as tmp:
        edge, local = edge_store(Path(tmp)), local_store()
        try:
            load(edge, COLLECTION, data, "edge")
            load(local, COLLECTION, data, "local")
            cores = {
                "edge": search_core(edge, COLLECTION, data.dims),
                "local": search_core(local, COLLECTION, data.dims),
            }
            versus = fused_latency(cores, data.queries(queries), VARIANTS["rrf"])
        finally:
            edge.close()
            local.close()
    return {"n": data.n, "dim": data.dim, "edge": "as loaded, no optimize(): exact", **_speedup(versus)}


def _speedup(versus: dict[str, dict[str, float]]) -> dict[str, Any]:
    return {
        **versus,
        "speedup_p50": ratio(versus["local"]["p50_ms"], versus["edge"]["p50_ms"]),
        "speedup_p99": ratio(versus["local"]["p99_ms"], versus["edge"]["p99_ms"]),
    }


def scale_probe(data: Dataset, queries: int, full_n: int) -> dict[str, Any]:
    """Build time and fused latency at ``data.n``; the build at ``full_n`` extrapolated as n log n."""
    with tempfile.TemporaryDirectory(prefix="vitrine-bench-search-") as tmp:
        edge = edge_store(Path(tmp))
        try:
            rate = load(edge, COLLECTION, data, "edge")
            build = build_index(edge, COLLECTION)
            latency = fused_latency(
                {"edge": search_core(edge, COLLECTION, data.dims)}, data.queries(queries), VARIANTS["rrf"]
            )
        finally:
            edge.close()
    growth = (full_n / data.n) * math.log(full_n) / math.log(data.n)
    return {
        "n": data.n,
        "dim": data.dim,
        "upsert_points_per_s": round(rate, 1),
        **build,
        "rrf": latency["edge"],
        # A lower bound only: at 1M x 3 on 2 cores the build ran > 33 min (search-1m, README).
        "extrapolated": {"n": full_n, "optimize_s": round(build["optimize_s"] * growth), "model": "n log n"},
    }


def figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """README rows for this part's result."""
    catalog, exact = result["catalog_size"], result["same_size_exact"]
    scale, e2e = result["scale_probe"], result["end_to_end_text"]
    big, label = f"{catalog['n'] / 1000:.1f}k", index_label(catalog)
    rows = []
    for name, stats in catalog["edge_variants"].items():
        goal = name == "rrf"
        options = VARIANTS[name]
        by_store = options.fusion == "rrf" and not (options.explain or options.cluster_rerank)
        where = "fused by the store" if by_store else "fused in Python"
        rows.append(
            figure(
                f"fused search, no embedding, {name} ({where}), p50 / p99 ({big} x 3 x {DIM}, {label})",
                f"{stats['p50_ms']} / {stats['p99_ms']} ms",
                f"p50 <= {GOAL_P50_MS} ms" if goal else "",
                stats["p50_ms"] <= GOAL_P50_MS if goal else None,
            )
        )
    shop = catalog["shop_filters"]
    for name in ("brand", "brand+price"):
        stats, base = shop[name], shop["unfiltered"]
        what = (
            "brand keyword"
            if name == "brand"
            else f"brand + price range, {shop['brand_price_share']:.1%} match"
        )
        rows.append(
            figure(
                f"filtered fused search ({what}) vs unfiltered, p99 ({big}, {label}, payload indexes)",
                f"{stats['p99_ms']} / {base['p99_ms']} ms (p50 {stats['p50_ms']} / {base['p50_ms']} ms)",
                f"p99 <= {GOAL_FILTERED_P99_MS:g} ms",
                stats["p99_ms"] <= GOAL_FILTERED_P99_MS,
            )
        )
    if "layouts" in shop:
        layouts = shop["layouts"]
        laid, plain = layouts["laid_out"], layouts["plain"]
        recall = layouts["recall_at_10"]
        rows.append(
            figure(
                f"brand + price: tenant/principal layouts with payload links (defaults) vs plain "
                f"indexes, p50 / p99 ({big}, {label})",
                f"{laid['p50_ms']} / {laid['p99_ms']} vs {plain['p50_ms']} / {plain['p99_ms']} ms",
            )
        )
        rows.append(
            figure(
                f"recall@10 vs exact filtered search ({big}): brand + price, and a filter naming no "
                "tenant field",
                f"{recall['laid_out']} and {recall['laid_out_other_filter']}",
                f">= {GOAL_FILTERED_RECALL}",
                min(recall["laid_out"], recall["laid_out_other_filter"]) >= GOAL_FILTERED_RECALL,
            )
        )
    if "image_expansion" in catalog:
        (off_name, off), (on_name, on) = catalog["image_expansion"].items()
        rows.append(
            figure(
                f"MoreLikeThis (an image query), {on_name} vs {off_name}, p50 / p99 ({big}, {label}, "
                "weighted_rrf)",
                f"{on['p50_ms']} / {on['p99_ms']} vs {off['p50_ms']} / {off['p99_ms']} ms "
                f"({ratio(on['p50_ms'], off['p50_ms'])}x p50)",
            )
        )
    for compared, versus, goal in (
        (f"rrf, {big}, {label} vs local exact", catalog["edge_vs_local_rrf"], True),
        (f"weighted_rrf, {big}, {label} vs local exact", catalog["edge_vs_local_weighted_rrf"], False),
        (f"rrf, {exact['n'] // 1000}k, both exact", exact, False),
    ):
        rows.append(
            figure(
                f"fused search, local mode / Edge p50 ({compared})",
                f"{versus['speedup_p50']}x ({versus['local']['p50_ms']} / {versus['edge']['p50_ms']} ms)",
                f">= {GOAL_SPEEDUP:g}x" if goal else "",
                versus["speedup_p50"] >= GOAL_SPEEDUP if goal else None,
            )
        )
    rows.append(
        figure(
            f"Edge optimize() and fused rrf p50 / p99 at {scale['n'] // 1000}k x 3 x {scale['dim']} "
            f"({index_label(scale)}); 1M: `python -m bench search-1m`",
            f"{scale['optimize_s']} s; {scale['rrf']['p50_ms']} / {scale['rrf']['p99_ms']} ms",
        )
    )
    rows.append(
        figure(
            f"text Search RPC end to end, CPU, p50 / p99 ({e2e['items_ingested']} items)",
            f"{e2e['search_rpc']['p50_ms']} / {e2e['search_rpc']['p99_ms']} ms "
            f"(embedding alone p50 {e2e['embed_text_rpc_alone']['p50_ms']} ms)",
        )
    )
    rows.extend(cache_figures(e2e))
    return rows


def cache_figures(e2e: dict[str, Any]) -> list[dict[str, Any]]:
    """Cold vs repeated text Search RPC p50 (query embedding cache) and the lexical member's added
    cost, measured in the same run."""
    cold, repeated = e2e["search_rpc"]["p50_ms"], e2e["search_rpc_repeated"]["p50_ms"]
    return [
        figure(
            "text Search RPC p50, cold query (embedded) end to end",
            f"{cold} ms",
            f"<= {GOAL_COLD_MS:g} ms",
            cold <= GOAL_COLD_MS,
        ),
        figure(
            "text Search RPC p50, repeated query (query embedding cache) end to end",
            f"{repeated} ms ({e2e['repeated_vs_cold_p50']}x cold)",
            f"<= {GOAL_REPEATED_MS:g} ms",
            repeated <= GOAL_REPEATED_MS,
        ),
        figure(
            "lexical member's added cost, text Search RPC p50 (repeated query, with vs dense members only)",
            f"{e2e['lexical_added_p50_ms']:+} ms ({repeated} / {e2e['search_rpc_repeated_dense_only']['p50_ms']} ms)",
            f"<= +{GOAL_LEXICAL_ADDED_MS:g} ms",
            e2e["lexical_added_p50_ms"] <= GOAL_LEXICAL_ADDED_MS,
        ),
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every search measurement and write the result file (``--quick``: small sizes)."""
    parser = argparse.ArgumentParser(prog="python -m bench search")
    parser.add_argument("--quick", action="store_true", help="small sizes and few queries (a smoke run)")
    args = parser.parse_args(argv or [])
    if args.quick:
        catalog_n, compare_n, scale_n, queries, local_queries, items = 3_000, 1_000, 5_000, 20, 10, 64
    else:
        catalog_n, compare_n, scale_n, queries, local_queries, items = (
            CATALOG_N,
            COMPARE_N,
            SCALE_N,
            300,
            60,
            2_000,
        )
    catalog = catalog_size(make_dataset(catalog_n, DIM), queries, local_queries)
    print(f"catalog size {catalog_n}: {catalog['edge_variants']['rrf']}", flush=True)
    exact = same_size_exact(make_dataset(compare_n, DIM, seed=1), local_queries)
    print(f"same size {compare_n}: speedup p50 {exact['speedup_p50']}", flush=True)
    scale = scale_probe(make_dataset(scale_n, SCALE_DIM, seed=2), queries, FULL_N)
    print(
        f"scale {scale_n} x {SCALE_DIM}: optimize {scale['optimize_s']} s, 1M ~{scale['extrapolated']}",
        flush=True,
    )
    bundle, bundle_source = bench_bundle()
    e2e = text_search_e2e(bundle, items, queries=50 if args.quick else 200)
    print(f"end to end: {e2e['search_rpc']}", flush=True)
    result = {
        "setup": {
            "core": "SearchCore.search_vectors (default SearchConfig: 100 candidates per member, top_k 10)",
            "data": "clustered random unit vectors, 3 members (bench/vectors.py)",
            "bundle_e2e": bundle_source,
        },
        "catalog_size": catalog,
        "same_size_exact": exact,
        "scale_probe": scale,
        "end_to_end_text": e2e,
    }
    result["figures"] = figures(result)
    finish("search", result, quick=args.quick)
    return result


if __name__ == "__main__":
    main()
