"""``python -m bench.readme_table [--write README.md]``: the README benchmark table from bench/results.

Reads every ``bench/results/*.json`` present. A part's ``figures(result)`` turns its result into
rows (what, value, goal, met); the embedder part's rows are read here from its own keys. ``--write``
replaces the text between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` in the given file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import RESULTS, figure

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
ORDER = ("embedder", "store", "search", "search-1m", "ingest")
OTHER_TABLES = {"reliability"}  # results with a README table of their own (scripts/reliability_table.py)


def embedder_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for embedder.json, which keeps goals beside its figures."""
    served, single, trim = result["served"], result["concurrent_single_image"], result["text_trim"]
    rows = [
        figure(
            f"embedder served / raw forward ({served['request_size']} images per request)",
            f"{served['ratio_vs_raw']}x ({served['images_per_s']} / {result['raw_forward']['best_images_per_s']} img/s)",
            served["goal"],
            served["ratio_vs_raw"] >= 0.8,
        ),
        figure(
            f"embedder batching on / off ({single['clients']} clients, 1 image each)",
            f"{single['speedup']}x",
            single["goal"],
            single["speedup"] >= 3,
        ),
        figure(
            "text encoding trimmed / padded to 77 tokens",
            f"{trim['speedup']}x (min cosine {trim['min_cosine']})",
            trim["goal"],
            trim["speedup"] >= 3 and trim["min_cosine"] >= 0.9999,
        ),
    ]
    shared = result.get("shared_text_trunk")
    if shared and shared["groups"]:
        rows.append(
            figure(
                f"one text query, {len(shared['groups'][0])} members on one frozen text trunk: per member / shared",
                f"{shared['speedup']}x ({shared['per_member_p50_ms']} / {shared['shared_p50_ms']} ms p50, "
                f"max |diff| {shared['max_abs_diff']:.1g})",
            )
        )
    images = result.get("image_members", {})
    if images.get("shared_image_trunks"):
        groups = images["shared_image_trunks"]
        sharing = sum(len(g) for g in groups)
        rows.append(
            figure(
                f"bundle image embedding in one process, {sharing} members on {len(groups)} shared frozen "
                f"trunks: shared / trunk per member (batch {images['batch']})",
                f"{images['bundle_images_per_s'] / images['bundle_images_per_s_trunk_per_member']:.2f}x "
                f"({images['bundle_images_per_s']} / {images['bundle_images_per_s_trunk_per_member']} img/s)",
            )
        )
    return rows


SPECIAL: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {"embedder": embedder_rows}


def rows_of(name: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    """The README rows of one result file: from its part's ``figures(result)`` (current labels and
    goals without re-measuring), else the rows stored in the file, else a reader kept here."""
    try:
        module = importlib.import_module(f"bench.{name.replace('-', '_')}")
    except ModuleNotFoundError:
        module = None
    if module is not None and hasattr(module, "figures"):
        return list(module.figures(result))
    if "figures" in result:
        return list(result["figures"])
    part = name if name in SPECIAL else name.split("-", 1)[0]  # embedder-<bundle>: another bundle's run
    if part in SPECIAL:
        return SPECIAL[part](result)
    raise ValueError(f"bench/results/{name}.json: no figures(result) in its part, no 'figures' in the file")


def _sort_key(path: Path) -> tuple[int, str]:
    return (ORDER.index(path.stem) if path.stem in ORDER else len(ORDER), path.stem)


def _met(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[value]


def table(results: Path = RESULTS) -> str:
    """The Markdown table (one row per figure) and the machine/date line of each part."""
    lines = ["| part | what | value | goal | met? |", "|---|---|---|---|---|"]
    notes = []
    for path in sorted(results.glob("*.json"), key=_sort_key):
        if path.stem in OTHER_TABLES:
            continue
        result = json.loads(path.read_text())
        for row in rows_of(path.stem, result):
            lines.append(
                f"| {path.stem} | {row['what']} | {row['value']} | {row['goal'] or '-'} | {_met(row['met'])} |"
            )
        machine = result.get("machine", {})
        notes.append(f"{path.stem}: {machine.get('date', '?')}, {machine.get('cpu_count', '?')} CPUs")
    return "\n".join([*lines, "", "Measured: " + "; ".join(notes) + "."])


def write_into(readme: Path, text: str) -> None:
    """Replace the marked block of ``readme`` with ``text``; ValueError when the markers are missing."""
    content = readme.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(content):
        raise ValueError(f"{readme}: markers {START} ... {END} not found")
    readme.write_text(pattern.sub(lambda _: f"{START}\n{text}\n{END}", content, count=1))


def main(argv: list[str] | None = None) -> None:
    """Print the table, or write it into a README between the bench markers."""
    parser = argparse.ArgumentParser(prog="python -m bench.readme_table", description=__doc__)
    parser.add_argument("--write", type=Path, metavar="README", help="replace the marked block in this file")
    args = parser.parse_args(argv)
    text = table()
    if args.write:
        write_into(args.write, text)
        print(f"updated {args.write}")
    else:
        print(text)


if __name__ == "__main__":
    main()
