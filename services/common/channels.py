"""Client channels for internal calls (search/ingest -> embedder): retries, limits, TLS, token.

Retries are declared in a gRPC service config: UNAVAILABLE is retried with exponential back-off
for the embedder's methods, which are all idempotent (same input -> same vectors). The caller's
deadline still bounds the total time, retries included.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc

RETRY_SERVICE_CONFIG = {
    # Spread calls over every address a name resolves to (e.g. dns:///embedder-headless:50051 in k8s).
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [
        {
            "name": [{"service": "vitrine.v1.Embedder"}],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.05s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
}


def channel_options(max_message_mb: int = 32, retries: bool = True) -> list[tuple[str, object]]:
    """Options for an internal client channel."""
    size = max_message_mb * 1024 * 1024
    options: list[tuple[str, object]] = [
        ("grpc.max_receive_message_length", size),
        ("grpc.max_send_message_length", size),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.enable_retries", 1 if retries else 0),
    ]
    if retries:
        options.append(("grpc.service_config", json.dumps(RETRY_SERVICE_CONFIG)))
    return options


def open_channel(
    address: str,
    *,
    max_message_mb: int = 32,
    retries: bool = True,
    tls_ca: str = "",
    auth_token: str = "",
) -> grpc.aio.Channel:
    """An aio channel to ``address``; TLS when ``tls_ca`` is given, bearer token when ``auth_token`` is."""
    options = channel_options(max_message_mb, retries)
    if not tls_ca:
        if auth_token:
            raise ValueError("a bearer token needs TLS (set tls_ca) so it is not sent in plaintext")
        return grpc.aio.insecure_channel(address, options=options)
    creds = grpc.ssl_channel_credentials(root_certificates=Path(tls_ca).read_bytes())
    if auth_token:
        token_creds = grpc.access_token_call_credentials(auth_token)
        creds = grpc.composite_channel_credentials(creds, token_creds)
    return grpc.aio.secure_channel(address, creds, options=options)
