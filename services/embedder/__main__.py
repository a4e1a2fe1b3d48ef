"""Run the embedder: ``python -m services.embedder --bundle PATH --port N``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

from services.common.config import VitrineConfig, load_config
from services.common.logsetup import setup_logging
from services.embedder.service import build


async def serve(cfg: VitrineConfig) -> None:
    """Run the embedder until signalled (see :func:`services.embedder.service.build`)."""
    await build(cfg).serve()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (each overrides the config file and env)."""
    parser = argparse.ArgumentParser(prog="python -m services.embedder", description=__doc__)
    parser.add_argument("--config", help="TOML config file (default: $VITRINE_CONFIG or config/vitrine.toml)")
    parser.add_argument("--bundle", help="bundle directory (default: VITRINE_EMBEDDER_BUNDLE)")
    parser.add_argument("--host", help="bind address")
    parser.add_argument("--port", type=int, help="port (default 50051; 0 picks a free one)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--precision", help="auto | fp32 | fp16 | bf16")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    cfg = load_config(args.config)
    embedder = dataclasses.replace(
        cfg.embedder,
        **{
            k: v
            for k, v in {"bundle": args.bundle, "device": args.device, "precision": args.precision}.items()
            if v
        },
    )
    server_cfg = dataclasses.replace(
        cfg.embedder_server,
        **{k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None},
    )
    cfg = dataclasses.replace(cfg, embedder=embedder, embedder_server=server_cfg)
    setup_logging(cfg.log_level, cfg.log_json)
    asyncio.run(serve(cfg))


if __name__ == "__main__":
    main()
