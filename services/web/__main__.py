"""Run the HTTP gateway: ``python -m services.web [--port 8080] [--search-addr HOST:PORT]``."""

from __future__ import annotations

import argparse
import dataclasses

import uvicorn

from domain.schema import load_schema
from services.common.config import load_config
from services.common.logsetup import setup_logging
from services.web.app import create_app


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m services.web", description=__doc__)
    parser.add_argument("--config")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--search-addr")
    parser.add_argument("--embedder-addr")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    overrides = {
        "host": args.host,
        "port": args.port,
        "search_addr": args.search_addr,
        "embedder_addr": args.embedder_addr,
    }
    web = dataclasses.replace(cfg.web, **{k: v for k, v in overrides.items() if v is not None})
    setup_logging(cfg.log_level, cfg.log_json)
    uvicorn.run(
        create_app(web, load_schema(cfg.catalog.schema)),
        host=web.host,
        port=web.port,
        log_level=cfg.log_level.lower(),
    )


if __name__ == "__main__":
    main()
