"""A throw-away certificate authority for TLS and mTLS tests (trustme; nothing leaves tmp_path)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme

SERVER_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class Pki:
    """CA, server certificate files and a client certificate (PEM bytes) for mTLS."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    ca_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes


def make_pki(directory: Path) -> Pki:
    """Issue a server certificate for localhost and 127.0.0.1 and a client certificate, written under ``directory``."""
    ca = trustme.CA()
    server = ca.issue_cert(*SERVER_NAMES)
    client = ca.issue_cert("client")
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(
        ca_file=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        ca_pem=ca.cert_pem.bytes(),
        client_cert_pem=client.cert_chain_pems[0].bytes(),
        client_key_pem=client.private_key_pem.bytes(),
    )
    ca.cert_pem.write_to_path(pki.ca_file)
    server.cert_chain_pems[0].write_to_path(pki.server_cert)
    server.private_key_pem.write_to_path(pki.server_key)
    return pki
