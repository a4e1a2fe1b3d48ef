"""gRPC health probe: ``python -m services.common.healthcheck --addr HOST:PORT [--service NAME]``.

Exits 0 when the service reports SERVING, 1 otherwise (for Docker HEALTHCHECK and scripts).
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(addr: str, service: str = "", timeout: float = 3.0) -> str:
    """Return the serving status name of ``service`` at ``addr`` (raises grpc.RpcError)."""
    with grpc.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--addr", default="127.0.0.1:50051")
    parser.add_argument("--service", default="")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    try:
        status = check(args.addr, args.service, args.timeout)
    except grpc.RpcError as exc:
        print(f"{args.addr}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    print(f"{args.addr} {args.service or '<overall>'}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
