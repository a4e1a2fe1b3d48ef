"""Refresh the generated parts of README.md: configuration, benchmark, evaluation and reliability tables.

``python scripts/update_readme.py`` rewrites the text between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->`` markers; everything else in the README is left as written.
"""

from __future__ import annotations

import io
import json
import re
import sys
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.config_table import main as config_table  # noqa: E402
from scripts.eval_table import DEFAULT_REPORT, eval_table  # noqa: E402
from scripts.reliability_table import DEFAULT_RESULTS, reliability_table  # noqa: E402


def _captured(fn) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        fn()
    return buf.getvalue().strip()


def replace_block(text: str, name: str, body: str) -> str:
    """Replace the body of one marker pair (the markers must exist)."""
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no <!-- {name}:start/end --> markers")
    return pattern.sub(lambda m: f"{m.group(1)}{body}\n{m.group(2)}", text)


def main() -> None:
    """Rewrite README.md in place."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    text = replace_block(text, "config-table", _captured(config_table))
    try:
        from bench.readme_table import main as bench_table

        text = replace_block(text, "bench", _captured(bench_table))
    except ImportError:
        print("bench/readme_table.py not present; benchmark table left as is", file=sys.stderr)
    if DEFAULT_REPORT.exists():
        text = replace_block(text, "eval", eval_table(json.loads(DEFAULT_REPORT.read_text())))
    else:
        print(f"{DEFAULT_REPORT} not found (run make evaluate); evaluation table left as is", file=sys.stderr)
    if DEFAULT_RESULTS.exists():
        text = replace_block(text, "reliability", reliability_table(json.loads(DEFAULT_RESULTS.read_text())))
    else:
        print(f"{DEFAULT_RESULTS} not found (run make reliability); table left as is", file=sys.stderr)
    readme.write_text(text)
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
