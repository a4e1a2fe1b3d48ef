"""Run the HTTP gateway: ``python -m services.web [--port 8080] [--search-addr HOST:PORT] [--blobs-dir DIR]``.

Product images come from the blob store ingest writes (``VITRINE_BLOBS_*``, read-only here) and
from ``image_uri`` files under ``VITRINE_WEB_IMAGE_ROOT``.
"""

from __future__ import annotations

import argparse
import dataclasses

import uvicorn

from domain.schema import load_schema
from services.common.config import load_config
from services.common.logsetup import setup_logging
from services.storage.blobs import open_blob_store
from services.web.app import create_app


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m services.web", description=__doc__)
    parser.add_argument("--config")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--search-addr")
    parser.add_argument("--embedder-addr")
    parser.add_argument("--blobs-dir", help="folder of pushed image bytes (default VITRINE_BLOBS_DIR)")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    if args.blobs_dir:
        cfg = dataclasses.replace(cfg, blobs=dataclasses.replace(cfg.blobs, dir=args.blobs_dir))
    overrides = {
        "host": args.host,
        "port": args.port,
        "search_addr": args.search_addr,
        "embedder_addr": args.embedder_addr,
    }
    web = dataclasses.replace(cfg.web, **{k: v for k, v in overrides.items() if v is not None})
    setup_logging(cfg.log_level, cfg.log_json)
    blobs = open_blob_store(cfg.blobs, cfg.store, writable=False)
    uvicorn.run(
        create_app(web, blobs, load_schema(cfg.catalog.schema)),
        host=web.host,
        port=web.port,
        log_level=cfg.log_level.lower(),
    )


if __name__ == "__main__":
    main()
