"""Run the embedder: ``python -m services.embedder --bundle PATH --port N``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging

from services.common.config import VitrineConfig, load_config
from services.common.logsetup import setup_logging
from services.common.server import GrpcServer, ServiceBinding
from services.embedder.core import EmbedderCore
from services.embedder.encoder import EnsembleEncoder
from services.embedder.server import SERVICE_NAME, EmbedderServicer
from vitrine.v1 import embedder_pb2_grpc

log = logging.getLogger("vitrine.embedder")


async def serve(cfg: VitrineConfig) -> None:
    """Start the server (NOT_SERVING), load the bundle, report SERVING, run until signalled."""
    servicer = EmbedderServicer()
    server = GrpcServer(
        cfg.embedder_server,
        [ServiceBinding(SERVICE_NAME, embedder_pb2_grpc.add_EmbedderServicer_to_server, servicer)],
    )
    server.install_signal_handlers()
    port = await server.start()
    encoder = await asyncio.to_thread(EnsembleEncoder.load, cfg.embedder)
    servicer.core = EmbedderCore(encoder, cfg.embedder)
    await server.set_serving(True)
    log.info("embedder ready", extra={"port": port})
    try:
        await server.wait_for_termination()
    finally:
        await servicer.core.close()


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
