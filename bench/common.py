"""Helpers shared by benchmark parts: timing, result files, the bundle to measure."""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from domain.bundle import load_bundle
from services.common.config import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results"
DEFAULT_BUNDLE = PROJECT_ROOT / "data" / "bundles" / "default"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import torch  # here, so that parts which never run a model keep it out of their memory

    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def best_of(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Fastest wall time of ``repeats`` calls (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def percentile(values: list[float], q: float) -> float:
    """q-th percentile (0..100) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary_ms(values_s: list[float]) -> dict[str, float]:
    """p50/p90/p99/mean in milliseconds."""
    ms = [v * 1000 for v in values_s]
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "n": len(ms),
    }


def bench_bundle() -> tuple[Path, str]:
    """The default trained bundle when built, else a random-init stand-in of the same shape."""
    if (DEFAULT_BUNDLE / "bundle.json").exists():
        return DEFAULT_BUNDLE, "default bundle (make train)"
    from tests.support.bundles import make_random_bundle

    directory = Path(tempfile.mkdtemp(prefix="vitrine-bench-"))
    return make_random_bundle(directory), "random-init test bundle (run `make train` for the real one)"


def describe_bundle(path: Path) -> list[dict[str, Any]]:
    """Member names, archs, dims and image sizes."""
    bundle = load_bundle(path)
    return [
        {"name": m.name, "arch": m.arch, "dim": m.dim, "image_size": m.image_size} for m in bundle.members
    ]


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Write bench/results/<name>.json and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2))
    print(f"wrote {path}")
    return path


def figure(what: str, value: float | str, goal: str = "", met: bool | None = None) -> dict[str, Any]:
    """One row of the README benchmark table: what was measured, its value, the goal and whether met."""
    return {"what": what, "value": value, "goal": goal, "met": met}


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` rounded to 2 decimals (nan when the denominator is 0)."""
    return round(numerator / denominator, 2) if denominator else float("nan")


def finish(name: str, result: dict[str, Any], quick: bool) -> None:
    """Write the result file of a full run; a ``--quick`` run only prints its figures (it proves the code)."""
    if quick:
        for row in result.get("figures", []):
            print(f"  {row['what']}: {row['value']}  (goal {row['goal'] or '-'}, met {row['met']})")
        print(f"--quick: {name} result not written")
        return
    write_result(name, result)


def shared_catalog() -> Path:
    """The shared Fashion Product Images folder (``$VITRINE_DATA``, else ../shared/data/...)."""
    default = PROJECT_ROOT.parent / "shared" / "data" / "fashion-product-images"
    return Path(os.environ.get("VITRINE_DATA", default))


def bench_catalog(count: int) -> tuple[Path, str]:
    """A catalog folder with at least ``count`` items: the shared one when present, else synthetic."""
    folder = shared_catalog()
    if (folder / "styles.csv").is_file():
        return folder, f"shared catalog {folder}"
    from training.data.synthetic import write_synthetic_catalog

    directory = Path(tempfile.mkdtemp(prefix="vitrine-bench-catalog-"))
    return write_synthetic_catalog(
        directory, count=count
    ), f"synthetic catalog ({count} items; no shared data)"
