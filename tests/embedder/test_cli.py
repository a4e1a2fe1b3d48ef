"""``python -m services.embedder --bundle PATH --port N`` serves, and drains on SIGTERM."""

from __future__ import annotations

import signal

import grpc

from tests.support.procs import free_port, process_output, start_module, wait_serving
from vitrine.v1 import embedder_pb2, embedder_pb2_grpc


def test_cli_serves_and_exits_cleanly_on_sigterm(random_bundle):
    port = free_port()
    proc = start_module("services.embedder", ["--bundle", str(random_bundle), "--port", str(port)])
    try:
        wait_serving(f"127.0.0.1:{port}", proc)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = embedder_pb2_grpc.EmbedderStub(channel)
            resp = stub.EmbedTexts(embedder_pb2.EmbedTextsRequest(texts=["a red dress"]), timeout=30)
            assert len(resp.embeddings[0].vectors) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        output = process_output(proc)
        assert '"msg": "draining"' in output
    finally:
        if proc.poll() is None:
            proc.kill()
