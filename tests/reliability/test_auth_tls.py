"""Scenario 6: the whole stack behind TLS and a bearer token, internal calls included.

Builds on tests/common/test_security_metrics.py (one server, token and mTLS): here every service
and the search/ingest -> embedder channel use TLS from a CA made in the test, and a token.
"""

from __future__ import annotations

import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.embed_client import EmbedderClient, EmbedderUnavailable
from tests.reliability.figures import record
from tests.reliability.harness import Security, inprocess_stack
from tests.support.tls import make_pki
from vitrine.v1 import (
    embedder_pb2,
    embedder_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)

TOKEN = "reliability-token-7f3a"
BAD_METADATA = {
    "no_token": (),
    "wrong_token": (("authorization", "Bearer not-the-token"),),
    "token_without_scheme": (("authorization", TOKEN),),
    "token_prefix": (("authorization", f"Bearer {TOKEN[:-1]}"),),
}
GOOD = (("authorization", f"Bearer {TOKEN}"),)


async def _products():
    yield ingest_pb2.Product(id="tls-1", image_uri="ok.jpg", text="Green shirt")


async def _code_and_ms(call) -> tuple[grpc.StatusCode, float]:
    start = time.perf_counter()
    try:
        await call()
        code = grpc.StatusCode.OK
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
    return code, (time.perf_counter() - start) * 1000


async def test_token_and_tls_guard_every_service(encoder, random_bundle, tmp_path, image_root):
    pki = make_pki(tmp_path / "pki")
    security = Security(str(pki.server_cert), str(pki.server_key), str(pki.ca_file), TOKEN)
    async with inprocess_stack(
        encoder, random_bundle, tmp_path / "store", image_root, security=security
    ) as stack:
        calls = {
            "embedder": lambda ch, md: embedder_pb2_grpc.EmbedderStub(ch).EmbedTexts(
                embedder_pb2.EmbedTextsRequest(texts=["shirt"]), metadata=md, timeout=10
            ),
            "ingest": lambda ch, md: ingest_pb2_grpc.IngestStub(ch).Count(
                ingest_pb2.CountRequest(), metadata=md, timeout=10
            ),
            "search": lambda ch, md: search_pb2_grpc.SearchStub(ch).Search(
                search_pb2.SearchRequest(text="shirt"), metadata=md, timeout=10
            ),
        }
        refused: dict[str, grpc.StatusCode] = {}
        refusal_ms: list[float] = []
        health: dict[str, int] = {}
        for service, call in calls.items():
            async with security.channel(stack.addr(service)) as channel:
                for name, metadata in BAD_METADATA.items():
                    code, ms = await _code_and_ms(lambda: call(channel, metadata))  # noqa: B023
                    refused[f"{service}/{name}"] = code
                    refusal_ms.append(ms)
                check = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
                health[service] = check.status
        async with security.channel(stack.addr("ingest")) as channel:
            summary = await ingest_pb2_grpc.IngestStub(channel).Upsert(_products(), metadata=GOOD, timeout=30)
        async with security.channel(stack.addr("search")) as channel:
            found = await search_pb2_grpc.SearchStub(channel).Search(
                search_pb2.SearchRequest(text="green shirt", top_k=1), metadata=GOOD, timeout=10
            )
        async with grpc.aio.insecure_channel(stack.addr("search")) as plaintext:
            plaintext_code, _ = await _code_and_ms(lambda: calls["search"](plaintext, GOOD))
        tokenless = EmbedderClient.connect(
            stack.addr("embedder"), 5.0, tls_ca=str(pki.ca_file), wait_for_ready=False
        )
        try:
            await tokenless.embed_texts(["shirt"])
            internal_code = grpc.StatusCode.OK
        except EmbedderUnavailable as exc:
            internal_code = exc.code
        finally:
            await tokenless.close()

    record(
        "auth_tls",
        {
            "refused_calls": len(refused),
            "unauthenticated": sum(c == grpc.StatusCode.UNAUTHENTICATED for c in refused.values()),
            "slowest_refusal_ms": round(max(refusal_ms), 2),
            "health_serving_without_token": sum(
                s == health_pb2.HealthCheckResponse.SERVING for s in health.values()
            ),
            "tls_round_trip_upserted": summary.upserted,
            "tls_round_trip_hits": len(found.hits),
            "plaintext_to_tls": plaintext_code.name,
            "internal_call_without_token": internal_code.name,
        },
    )
    assert refused == dict.fromkeys(refused, grpc.StatusCode.UNAUTHENTICATED)
    assert len(refused) == len(calls) * len(BAD_METADATA)
    assert health == dict.fromkeys(calls, health_pb2.HealthCheckResponse.SERVING)
    assert (summary.upserted, summary.failed) == (1, 0)
    assert [h.id for h in found.hits] == ["tls-1"]
    assert plaintext_code == grpc.StatusCode.UNAVAILABLE
    assert internal_code == grpc.StatusCode.UNAUTHENTICATED
