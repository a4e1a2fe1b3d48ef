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


# Reconnect to a restarted upstream within this long (gRPC's default back-off grows to 120 s).
MAX_RECONNECT_BACKOFF_MS = 2_000


def channel_options(max_message_mb: int = 32, retries: bool = True) -> list[tuple[str, object]]:
    """Options for an internal client channel.

    The per-call retry buffer holds a whole request (gRPC's default of 256 KiB would silently turn
    retries off for an ingest batch of larger images), and reconnect back-off is capped so a
    restarted embedder is used again within about two seconds.
    """
    size = max_message_mb * 1024 * 1024
    options: list[tuple[str, object]] = [
        ("grpc.max_receive_message_length", size),
        ("grpc.max_send_message_length", size),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.enable_retries", 1 if retries else 0),
        ("grpc.per_rpc_retry_buffer_size", size),
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
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
