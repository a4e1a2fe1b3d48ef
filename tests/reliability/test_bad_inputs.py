"""Scenario 4: malformed requests get the right status code, nothing is written, the servers stay up."""

from __future__ import annotations

import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.reliability.badinputs import (
    AWKWARD_IMAGES,
    Case,
    embedder_cases,
    ingest_items,
    ingest_unary_cases,
    search_cases,
)
from tests.reliability.figures import record
from tests.support.images import solid
from vitrine.v1 import (
    embedder_pb2,
    embedder_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)

TIMEOUT_S = 20.0


async def _requests(products):
    for product in products:
        yield product


async def _run_cases(stub, cases: list[Case]) -> tuple[list[str], list[float]]:
    """Each case once; returns the mismatches and how long each refusal took."""
    wrong: list[str] = []
    took: list[float] = []
    for case in cases:
        start = time.perf_counter()
        try:
            await getattr(stub, case.method)(case.request, timeout=TIMEOUT_S)
            got = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            got = exc.code()
        took.append(time.perf_counter() - start)
        if got != case.code:
            wrong.append(f"{case.name}: expected {case.code.name}, got {got.name}")
    return wrong, took


async def _alive(channel: grpc.aio.Channel) -> bool:
    status = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return status.status == health_pb2.HealthCheckResponse.SERVING


async def test_malformed_requests_are_refused_and_nothing_is_written(stack, image_root):
    async with (
        grpc.aio.insecure_channel(stack.addr("embedder")) as embedder_channel,
        grpc.aio.insecure_channel(stack.addr("ingest")) as ingest_channel,
        grpc.aio.insecure_channel(stack.addr("search")) as search_channel,
    ):
        embedder = embedder_pb2_grpc.EmbedderStub(embedder_channel)
        ingest = ingest_pb2_grpc.IngestStub(ingest_channel)
        search = search_pb2_grpc.SearchStub(search_channel)
        good = ingest_pb2.Product(
            id="good-1", image_uri="ok.jpg", text="Green shirt", attributes={"gender": "Men"}
        )
        first = await ingest.Upsert(_requests([good]), timeout=TIMEOUT_S)
        assert (first.upserted, first.failed) == (1, 0), first
        before = (await ingest.Count(ingest_pb2.CountRequest(), timeout=TIMEOUT_S)).count

        wrong_embedder, embedder_took = await _run_cases(embedder, embedder_cases())
        wrong_search, search_took = await _run_cases(search, search_cases())
        wrong_ingest, ingest_took = await _run_cases(ingest, ingest_unary_cases())

        items = ingest_items(str(image_root.parent))
        summary = await ingest.Upsert(_requests([p for _, p, _ in items]), timeout=TIMEOUT_S)
        codes = {e.index: e.code for e in summary.errors}
        wrong_items = [
            f"{name}: expected {code}, got {codes.get(i, 'OK')}"
            for i, (name, _, code) in enumerate(items)
            if codes.get(i) != code
        ]
        oversized = [ingest_pb2.Product(id="big-1", image=b"\xff" * (5 * 1024 * 1024))]
        try:
            await ingest.Upsert(_requests(oversized), timeout=TIMEOUT_S)
            oversized_code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            oversized_code = exc.code()

        after = (await ingest.Count(ingest_pb2.CountRequest(), timeout=TIMEOUT_S)).count
        awkward = {
            name: len(
                (
                    await embedder.EmbedImages(
                        embedder_pb2.EmbedImagesRequest(images=[make()]), timeout=TIMEOUT_S
                    )
                ).embeddings
            )
            for name, make in AWKWARD_IMAGES.items()
        }
        still_ok = await search.Search(
            search_pb2.SearchRequest(text="green shirt", top_k=3), timeout=TIMEOUT_S
        )
        alive = [await _alive(c) for c in (embedder_channel, ingest_channel, search_channel)]
        again = await embedder.EmbedImages(
            embedder_pb2.EmbedImagesRequest(images=[solid()]), timeout=TIMEOUT_S
        )

    refused = len(embedder_cases()) + len(search_cases()) + len(ingest_unary_cases()) + len(items) + 1
    took = embedder_took + search_took + ingest_took
    record(
        "bad_inputs",
        {
            "malformed_requests": refused,
            "embedder_cases": len(embedder_took),
            "search_cases": len(search_took),
            "ingest_unary_cases": len(ingest_took),
            "ingest_item_cases": len(items),
            "wrong_codes": len(wrong_embedder + wrong_search + wrong_ingest + wrong_items),
            "slowest_refusal_ms": round(max(took) * 1000, 1),
            "points_before": before,
            "points_after": after,
            "awkward_images_embedded": sum(awkward.values()),
        },
    )
    assert refused >= 25
    assert wrong_embedder + wrong_search + wrong_ingest + wrong_items == []
    assert (summary.received, summary.upserted, summary.failed) == (len(items), 0, len(items))
    assert oversized_code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert before == after == 1
    assert awkward == dict.fromkeys(AWKWARD_IMAGES, 1)
    assert [h.id for h in still_ok.hits] == ["good-1"]
    assert alive == [True, True, True]
    assert len(again.embeddings) == 1
