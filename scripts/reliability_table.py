"""The README reliability table from bench/results/reliability.json (written by ``make reliability``).

One row per scenario with its figures (status-code counts, latencies in ms, counts), as measured.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "bench" / "results" / "reliability.json"
SKIP = {"measured_at"}


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def reliability_table(results: dict[str, Any]) -> str:
    """Markdown: scenario | figures."""
    lines = ["| scenario | figures |", "|---|---|"]
    for name, figures in sorted(results.get("scenarios", {}).items()):
        cells = "; ".join(f"`{k}` {_value(v)}" for k, v in figures.items() if k not in SKIP)
        lines.append(f"| {name} | {cells} |")
    machine = results.get("machine", {})
    lines.append("")
    lines.append(f"Measured {machine.get('date', '?')}, {machine.get('cpu_count', '?')} CPUs.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", nargs="?", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args(argv)
    print(reliability_table(json.loads(args.results.read_text())))


if __name__ == "__main__":
    main()
