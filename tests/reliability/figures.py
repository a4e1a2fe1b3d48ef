"""Print each scenario's figures, and merge them into one results file under ``make reliability``.

``make reliability`` sets ``VITRINE_RELIABILITY_RESULTS`` (bench/results/reliability.json); plain
``make test`` runs only print, so a test run leaves the tracked results file alone.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from bench.common import machine, summary_ms

RESULTS_ENV = "VITRINE_RELIABILITY_RESULTS"


def record(scenario: str, figures: dict[str, Any]) -> None:
    """Print ``figures`` and, when the results file is configured, store them under ``scenario``."""
    print(f"\n[reliability] {scenario}: {json.dumps(figures, sort_keys=True)}", flush=True)
    target = os.environ.get(RESULTS_ENV)
    if not target:
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data["machine"] = machine()
    data.setdefault("scenarios", {})[scenario] = {
        **figures,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".reliability-", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def latency_summary(latencies_s: list[float]) -> dict[str, float]:
    """p50/p90/p99/mean in ms (empty dict when there are none)."""
    return summary_ms(latencies_s) if latencies_s else {}


def code_counts(codes: list[grpc.StatusCode]) -> dict[str, int]:
    """How many calls ended with each status code name."""
    counts: dict[str, int] = {}
    for code in codes:
        counts[code.name] = counts.get(code.name, 0) + 1
    return dict(sorted(counts.items()))


__all__ = ["RESULTS_ENV", "code_counts", "latency_summary", "record"]
