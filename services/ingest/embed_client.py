"""The ingest side of the process boundary: the shared embedder client, built from ``IngestConfig``.

:class:`EmbedderClient` (see :mod:`services.common.embed_client`) is the production
``embed_images`` callable the ingest core takes: one ``EmbedImages`` call per batch with every
member, under ``rpc_timeout_s``. It raises :class:`EmbedRejected` (a ValueError) when the embedder
refuses the input, so the core can isolate the bad item, and :class:`EmbedderUnavailable` when the
embedder cannot answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.common import embed_client as shared
from services.common.config import IngestConfig
from services.common.embed_client import (
    EmbedderTimeout,
    EmbedderUnavailable,
    EmbedRejected,
    MemberVectors,
    vectors_from_response,
)


class EmbedderClient(shared.EmbedderClient):
    """The shared client plus a constructor from the ingest configuration."""

    @classmethod
    def from_config(cls, cfg: IngestConfig, members: Sequence[str] = ()) -> EmbedderClient:
        """A client on a channel to ``cfg.embedder_addr`` (TLS/token as configured)."""
        return cls.connect(
            cfg.embedder_addr,
            cfg.rpc_timeout_s,
            tls_ca=cfg.embedder_tls_ca,
            auth_token=cfg.embedder_auth_token,
            members=members,
        )


__all__ = [
    "EmbedRejected",
    "EmbedderClient",
    "EmbedderTimeout",
    "EmbedderUnavailable",
    "MemberVectors",
    "vectors_from_response",
]
