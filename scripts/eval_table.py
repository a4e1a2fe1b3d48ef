"""The README evaluation table from an ``eval-<split>.json`` written by ``python -m training.evaluate``.

``python scripts/eval_table.py [bench/results/eval/eval-test.json]`` prints a Markdown table: one row per
system (each member, each fusion, each fusion + cluster-aware re-rank, the default fusion on expanded
image queries), mAP@10 columns per query set; "–" where a system does not answer a set.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REPORT = ROOT / "bench" / "results" / "eval" / "eval-test.json"
COLUMNS = (
    ("text->image articleType", "macro", "text→image articleType macro"),
    ("text->image articleType", "micro", "micro"),
    ("text->image articleType", "recall@1", "R@1"),
    ("text->image subCategory", "macro", "text→image subCategory macro"),
    ("text->image masterCategory", "macro", "text→image masterCategory macro"),
    ("image->image articleType", "macro", "image→image articleType macro"),
    ("text->image shopper queries", "macro", "shopper queries (20 free-text)"),
    ("text->image colour+type", "macro", "colour+type queries"),
)


def eval_table(report: dict[str, Any], dataset: str = "fashion") -> str:
    """Markdown: systems × mAP@10 columns, the best value of each column in bold."""
    sets = report[dataset]
    columns = [c for c in COLUMNS if c[0] in sets]  # reports written before a column existed lack it
    # every system of any column, in report order (``<fusion>+expansion`` scores image queries only)
    systems = list(dict.fromkeys(system for s, _, _ in columns for system in sets[s]))
    best = {(s, m): max(scores[m] for scores in sets[s].values()) for s, m, _ in columns}
    lines = [
        "| system | " + " | ".join(label for _, _, label in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for system in systems:
        cells = []
        for s, metric, _ in columns:
            if system not in sets[s]:
                cells.append("–")
                continue
            value = sets[s][system][metric]
            cells.append(f"**{value:.3f}**" if value == best[(s, metric)] else f"{value:.3f}")
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    bundle = report["bundle"]
    lines.append("")
    lines.append(
        f"Bundle `{bundle['name']}` {bundle['version']} (default fusion `{bundle['fusion']}`, weights "
        f"{bundle['weights']}), {report['split']} split, {report['items']} items; mAP@10 unless noted."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the table for a report file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", nargs="?", type=Path, default=DEFAULT_REPORT)
    args = parser.parse_args(argv)
    print(eval_table(json.loads(args.report.read_text())))


if __name__ == "__main__":
    main()
