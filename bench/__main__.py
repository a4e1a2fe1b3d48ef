"""``python -m bench [part ...] [--quick]``: run benchmark parts (default: every default part).

Options after a single part go to that part (``python -m bench search-1m --sizes 100000``).

``search-1m`` (the scale curve up to 1M items on Edge, a long build) and ``gpu`` (needs CUDA; bench/gpu.sh) run
only when named.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys

PARTS = ("embedder", "store", "ingest", "search")
OPT_IN = ("search-1m", "gpu")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts in order; a part whose module is missing is reported, not hidden."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("parts", nargs="*", default=list(PARTS), help=f"any of {PARTS + OPT_IN}")
    parser.add_argument("--quick", action="store_true", help="small sizes, result files not written")
    args, extra = parser.parse_known_args(argv)
    if extra and len(args.parts) != 1:
        parser.error(f"options {extra} are for one part; name exactly one")
    unknown = [p for p in args.parts if p not in PARTS + OPT_IN]
    if unknown:
        parser.error(f"unknown part(s) {unknown}; valid: {list(PARTS + OPT_IN)}")
    for part in args.parts:
        print(f"== bench {part}", flush=True)
        run = importlib.import_module(f"bench.{part.replace('-', '_')}").main
        if not args.quick and not extra:
            run()
        elif inspect.signature(run).parameters:
            run(["--quick"] * args.quick + extra)
        else:
            parser.error(f"part {part!r} has no --quick mode")
    return 0


if __name__ == "__main__":
    sys.exit(main())
