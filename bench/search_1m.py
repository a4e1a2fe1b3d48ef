"""Opt-in: fused search at 1M items x 3 members on Edge (goal p99 <= 20 ms): ``python -m bench search-1m``.

Not part of ``make bench``: on a 2-core machine the HNSW build of 1M x 3 vectors takes far longer
than the ~10 minutes a default part may (the ``search`` part measures the build at 100k and
extrapolates it; see search.json ``scale_probe``). Vectors are 64-dim (1M x 3 x 64 float32 =
768 MB; at 256 dims they would be 3 GB plus the index). Same data generator, core and queries as
the other search figures. Writes bench/results/search-1m.json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from bench.common import figure, finish
from bench.fused import VARIANTS, fused_latency, search_core
from bench.vectors import build_index, edge_store, index_label, load, make_dataset, recall_at

FULL_N = 1_000_000
DIM = 64
GOAL_P99_MS = 20.0
COLLECTION = "bench"


def measure(n: int, dim: int, queries: int) -> dict[str, Any]:
    """Load, build the index, then fused latency (rrf, weighted_rrf) and per-member recall@10."""
    data = make_dataset(n, dim, seed=3)
    sample = data.queries(queries)
    with tempfile.TemporaryDirectory(prefix="vitrine-bench-1m-") as tmp:
        edge = edge_store(Path(tmp))
        try:
            rate = load(edge, COLLECTION, data, "edge")
            build = build_index(edge, COLLECTION)
            core = {"edge": search_core(edge, COLLECTION, data.dims)}
            variants = {
                name: fused_latency(core, sample, VARIANTS[name])["edge"] for name in ("rrf", "weighted_rrf")
            }
            recall = recall_at(edge, COLLECTION, data, sample[:50])
        finally:
            edge.close()
    return {
        "n": n,
        "dim": dim,
        "upsert_points_per_s": round(rate, 1),
        **build,
        "variants": variants,
        "recall_at_10": round(recall, 4),
    }


def figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """README rows for this part's result."""
    rrf, size = result["variants"]["rrf"], f"{result['n']:,} x 3 x {result['dim']}"
    return [
        figure(f"Edge optimize() ({size}, {index_label(result)})", f"{result['optimize_s']} s"),
        figure(
            f"fused search, no embedding, rrf, p50 / p99 ({size}, {index_label(result)})",
            f"{rrf['p50_ms']} / {rrf['p99_ms']} ms",
            f"p99 <= {GOAL_P99_MS:g} ms",
            rrf["p99_ms"] <= GOAL_P99_MS,
        ),
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure and write the result file (``--quick``: 20k items, to check the code path)."""
    parser = argparse.ArgumentParser(prog="python -m bench search-1m")
    parser.add_argument("--quick", action="store_true", help="20k items (a smoke run)")
    args = parser.parse_args(argv or [])
    result = measure(20_000 if args.quick else FULL_N, DIM, queries=50 if args.quick else 300)
    result["figures"] = figures(result)
    rrf = result["variants"]["rrf"]
    print(f"{result['n']} x 3 x {DIM}: optimize {result['optimize_s']} s, rrf {rrf}", flush=True)
    finish("search-1m", result, quick=args.quick)
    return result


if __name__ == "__main__":
    main()
