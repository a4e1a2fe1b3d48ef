"""Evaluation report: plain-text tables (ENCLIP-style mAP@10, StyleFinder-style Rank-k/mAP) and a PNG plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HEADLINE = "text->image articleType"


def _rows(sets: dict) -> list[str]:
    lines = []
    for set_name, by_system in sets.items():
        lines.append(f"\n{set_name}")
        lines.append(
            f"  {'system':<24}{'mAP@10 macro':>13}{'micro':>8}{'R@1':>7}{'R@5':>7}{'R@10':>7}{'mAP':>7}"
            f"{'P@10':>7}"
        )
        for system, s in by_system.items():
            lines.append(
                f"  {system:<24}{s['macro']:>13.4f}{s['micro']:>8.4f}{s['recall@1']:>7.3f}"
                f"{s['recall@5']:>7.3f}{s['recall@10']:>7.3f}{s['map']:>7.3f}{s.get('p@10', 0.0):>7.3f}"
            )
    return lines


def per_category_table(by_system: dict, systems: list[str], limit: int = 40) -> list[str]:
    """ENCLIP-style table: mAP@10 per category (rows) for the given systems (columns)."""
    categories = list(next(iter(by_system.values()))["per_query"])
    head = f"  {'category':<28}" + "".join(f"{s[:14]:>15}" for s in systems)
    lines = [head]
    for category in categories[:limit]:
        lines.append(
            f"  {category[:27]:<28}"
            + "".join(f"{by_system[s]['per_query'][category]:>15.3f}" for s in systems)
        )
    if len(categories) > limit:
        lines.append(f"  ... {len(categories) - limit} more in the JSON report")
    return lines


def print_report(report: dict) -> None:
    """Print every table of an evaluation report."""
    bundle = report["bundle"]
    print(
        f"bundle {bundle['name']} {bundle['version']}: fusion {bundle['fusion']}, weights {bundle['weights']}"
    )
    for section in ("fashion", "inshop"):
        if section in report:
            print(f"\n== {section} ({report.get('split', 'query/gallery')}) ==")
            print("\n".join(_rows(report[section])))
    calibration = report.get("calibration")
    if calibration:
        rates = {k: round(v, 3) for k, v in calibration["no_good_match"].items() if v is not None}
        print(
            f"\ncalibration: ECE {calibration['ece']:.4f} on {calibration['pairs']} first-page pairs, "
            f"threshold {calibration['threshold']:.3f}, no_good_match share {rates}"
        )
    headline = report.get("fashion", {}).get(HEADLINE)
    if headline:
        singles = [s for s in headline if s.startswith("single:")]
        best_single = max(singles, key=lambda s: headline[s]["macro"])
        fused = [s for s in headline if not s.startswith("single:")]
        best_fused = max(fused, key=lambda s: headline[s]["macro"]) if fused else best_single
        print(f"\nper articleType mAP@10 ({best_single} vs {best_fused})")
        print("\n".join(per_category_table(headline, [best_single, best_fused])))


def plot_report(report: dict, path: Path) -> Path:
    """Bar chart of macro mAP@10 per system for each Fashion query set."""
    sets = report.get("fashion") or report.get("inshop") or {}
    fig, axes = plt.subplots(1, max(1, len(sets)), figsize=(5 * max(1, len(sets)), 4.5), squeeze=False)
    for ax, (set_name, by_system) in zip(axes[0], sets.items(), strict=False):
        names = list(by_system)
        values = [by_system[n]["macro"] for n in names]
        colours = [
            "tab:blue" if n.startswith("single:") else "tab:orange" if "clusters" not in n else "tab:green"
            for n in names
        ]
        ax.barh(names, values, color=colours)
        ax.set_xlim(0, 1)
        ax.set_title(set_name, fontsize=9)
        ax.set_xlabel("macro mAP@10")
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
