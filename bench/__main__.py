"""``python -m bench [part ...]``: run benchmark parts (default: all available)."""

from __future__ import annotations

import argparse
import importlib
import sys

PARTS = ("embedder", "store", "ingest", "search")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts in order; a part whose module is missing is reported, not hidden."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("parts", nargs="*", default=list(PARTS), help=f"any of {PARTS}")
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}; valid: {list(PARTS)}")
    for part in args.parts:
        print(f"== bench {part}", flush=True)
        importlib.import_module(f"bench.{part}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
