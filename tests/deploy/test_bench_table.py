"""The README's benchmark table is generated from bench/results: every result file gives rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.common import RESULTS
from bench.readme_table import END, START, table, write_into


def test_every_committed_result_gives_rows():
    text = table(RESULTS)
    for path in RESULTS.glob("*.json"):
        if path.stem != "reliability":
            assert f"| {path.stem} |" in text, f"{path.name} gives no row"


def test_another_bundles_embedder_run_reads_like_the_embedder_part(tmp_path: Path):
    shutil.copy(RESULTS / "embedder.json", tmp_path / "embedder-other.json")
    result = json.loads((tmp_path / "embedder-other.json").read_text())
    served = result["served"]
    text = table(tmp_path)
    assert f"| embedder-other | embedder served / raw forward ({served['request_size']} images" in text


def test_the_table_replaces_only_the_marked_block(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{START}\nold\n{END}\nafter\n")
    write_into(readme, "new")
    assert readme.read_text() == f"before\n{START}\nnew\n{END}\nafter\n"
