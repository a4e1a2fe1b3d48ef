"""The Ingest servicer over real gRPC on loopback (shared bootstrap), and the bulk loader through it."""

from __future__ import annotations

import csv
import signal
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY, generate_latest

from domain.catalog import STYLE_COLUMNS
from services.common.embed_client import EmbedderUnavailable
from services.ingest.__main__ import parse_args
from services.ingest.loader import iter_catalog, load_direct, load_via_rpc, with_image_bytes
from services.ingest.server import SERVICE_NAME
from tests.ingest.conftest import BLUE, GREEN, RED, serving_ingest
from tests.support.images import solid
from tests.support.procs import free_port, start_module
from vitrine.v1 import ingest_pb2, ingest_pb2_grpc


@pytest.fixture
async def ingest(make_core, bundle):
    """(core, stub) for an ingest server on 127.0.0.1:0."""
    core = make_core(bundle)
    async with serving_ingest(core) as channel:
        yield core, channel, ingest_pb2_grpc.IngestStub(channel)


def fashion_folder(root, n: int = 9):
    """A Fashion Product Images layout: styles.csv (with a quoted comma) + images/<id>.jpg."""
    (root / "images").mkdir(parents=True)
    with (root / "styles.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(STYLE_COLUMNS)
        for i in range(n):
            kind = ["Shirts", "Tshirts", "Jeans"][i % 3]
            writer.writerow(
                [
                    1000 + i,
                    "Men",
                    "Apparel",
                    "Topwear",
                    kind,
                    "",
                    "Fall",
                    2011,
                    "Casual",
                    f"Brand {i}, Men {kind}",
                ]
            )
            (root / "images" / f"{1000 + i}.jpg").write_bytes(solid([RED, GREEN, BLUE][i % 3]))
    return root


async def test_upsert_stream_delete_count(ingest):
    core, _, stub = ingest
    requests = [
        ingest_pb2.Product(id="a", image=solid(RED), attributes={"articleType": "Shirts"}),
        ingest_pb2.Product(id="b", image=b"junk"),
        ingest_pb2.Product(id="c", image=solid(BLUE), attributes={"articleType": "Jeans"}),
    ]

    async def stream():
        for request in requests:
            yield request

    summary = await stub.Upsert(stream())
    assert (summary.received, summary.upserted, summary.failed) == (3, 2, 1)
    assert summary.collection == "catalog__tiny-1"
    assert (summary.errors[0].index, summary.errors[0].id, summary.errors[0].code) == (
        1,
        "b",
        "INVALID_ARGUMENT",
    )
    count = await stub.Count(ingest_pb2.CountRequest(filters={"articleType": "Shirts|Jeans"}))
    assert (count.count, count.collection) == (2, "catalog__tiny-1")
    deleted = await stub.Delete(ingest_pb2.DeleteRequest(ids=["a"]))
    assert deleted.deleted == 1
    for bad in (ingest_pb2.DeleteRequest(), ingest_pb2.DeleteRequest(filters={"articleType": ""})):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Delete(bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Count(ingest_pb2.CountRequest(filters={"a.": "x"}))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "filters['a.']" in err.value.details()


def _sample(name: str, labels: tuple[tuple[str, str], ...]) -> float:
    return REGISTRY.get_sample_value(name, dict(labels)) or 0.0


async def test_ingest_and_store_metrics_move(ingest):
    _, _, stub = ingest
    upserted = ("vitrine_ingest_items_total", (("outcome", "upserted"),))
    failed = ("vitrine_ingest_items_total", (("outcome", "failed"),))
    store_upserts = ("vitrine_store_seconds_count", (("backend", "edge"), ("op", "upsert")))
    points = ("vitrine_store_points_upserted_total", (("backend", "edge"),))
    before = {key: _sample(*key) for key in (upserted, failed, store_upserts, points)}

    async def stream():
        for i, colour in enumerate((RED, GREEN, BLUE, RED, GREEN)):
            yield ingest_pb2.Product(id=f"m{i}", image=solid(colour))
        yield ingest_pb2.Product(id="bad", image=b"not an image")

    summary = await stub.Upsert(stream())
    assert (summary.upserted, summary.failed) == (5, 1)
    moved = {key: _sample(*key) - before[key] for key in before}
    assert moved[upserted] == 5 and moved[failed] == 1 and moved[points] == 5
    assert moved[store_upserts] >= 2  # batches of 4: at least two upsert calls, each timed
    text = generate_latest(REGISTRY).decode()
    assert 'vitrine_store_seconds_bucket{backend="edge",le="0.0005",op="upsert"}' in text


async def test_reindex_rpc_and_status_codes(ingest):
    core, _, stub = ingest
    await core.upsert_stream(iter([]))
    summary = await stub.Reindex(ingest_pb2.ReindexRequest())
    assert summary.old_collection == "catalog__tiny-1" and summary.new_collection.startswith(
        "catalog__tiny-1.r"
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Reindex(ingest_pb2.ReindexRequest(source_dir="/nonexistent/folder"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "no catalog found" in err.value.details()


async def test_unavailable_until_core_is_set():
    async with serving_ingest(None) as channel:
        stub = ingest_pb2_grpc.IngestStub(channel)
        for call, request in (
            (stub.Count, ingest_pb2.CountRequest()),
            (stub.Optimize, ingest_pb2.OptimizeRequest()),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(request, timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_bulk_load_through_rpc_is_resumable(ingest, image_root):
    core, channel, _ = ingest
    folder = fashion_folder(image_root / "fashion")
    products = list(iter_catalog(folder))
    assert products[1].text == "Brand 1, Men Tshirts" and "baseColour" not in products[1].attributes
    assert products[1].attributes["year"] == "2011" and products[1].image_uri.endswith("images/1001.jpg")
    report = await load_via_rpc(channel, with_image_bytes(iter_catalog(folder, limit=5)), stream_size=2)
    assert (report.received, report.upserted, report.failed) == (5, 5, 0)
    report = await load_via_rpc(channel, iter_catalog(folder), stream_size=4)  # by path, under the root
    assert (report.received, report.upserted) == (9, 9)
    assert core.store.count("catalog") == 9
    assert core.store.retrieve("catalog", ["1002"])[0].payload["articleType"] == "Jeans"


async def test_direct_load_skips_what_is_stored(make_core, bundle, image_root):
    folder = fashion_folder(image_root / "fashion", n=7)
    core = make_core(bundle)
    first = await load_direct(core, iter_catalog(folder, limit=4), total=4)
    again = await load_direct(core, iter_catalog(folder), total=7)
    assert (first.upserted, first.skipped) == (4, 0)
    assert (again.received, again.upserted, again.skipped) == (7, 3, 4)
    assert core.store.count("catalog") == 7


def test_cli_defaults_to_serve():
    assert parse_args(["--port", "0"]).command == "serve"
    args = parse_args(["load", "/data", "--limit", "10", "--direct"])
    assert (args.command, args.directory, args.limit, args.direct, args.send) == (
        "load",
        "/data",
        10,
        True,
        "bytes",
    )
    with pytest.raises(ValueError, match="no catalog found"):
        list(iter_catalog("/"))


@pytest.mark.data
def test_reads_the_real_fashion_catalog(shared_data):
    products = list(iter_catalog(shared_data))
    assert len(products) == 40441 and len({p.id for p in products}) == 40441
    by_id = {p.id: p for p in products}
    assert by_id["3413"].text == "Myntra Men's Yes, its all about me White T-shirt"
    assert by_id["15970"].attributes == {
        "gender": "Men",
        "masterCategory": "Apparel",
        "subCategory": "Topwear",
        "articleType": "Shirts",
        "baseColour": "Navy Blue",
        "season": "Fall",
        "year": "2011",
        "usage": "Casual",
    }
    assert all(p.image_uri.endswith(f"images/{p.id}.jpg") for p in products[:100])


async def test_embedder_outage_maps_to_unavailable(make_core, bundle):
    async def embedder_down(images):
        raise EmbedderUnavailable("EmbedImages failed: UNAVAILABLE: connection refused")

    core = make_core(bundle, embed=embedder_down)
    async with serving_ingest(core) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await ingest_pb2_grpc.IngestStub(channel).Upsert(
                iter([ingest_pb2.Product(id="a", image=solid(RED))])
            )
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "connection refused" in err.value.details()


def test_serve_command_runs_until_sigterm(bundle, tmp_path):
    port = free_port()
    env = {"VITRINE_INGEST_EMBEDDER_ADDR": f"127.0.0.1:{free_port()}"}
    proc = start_module(
        "services.ingest",
        ["--port", str(port), "--bundle", str(bundle.root), "--store", str(tmp_path / "s")],
        env,
    )
    try:
        # no embedder at that address: ingest opens its store and answers, but is not ready
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            count = None
            for _ in range(300):
                try:
                    count = ingest_pb2_grpc.IngestStub(channel).Count(ingest_pb2.CountRequest(), timeout=10)
                    break
                except grpc.RpcError as exc:  # UNAVAILABLE while the core opens
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE and proc.poll() is None
                    time.sleep(0.2)
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5
            )
        assert (count.count, count.collection) == (0, "catalog__tiny-1")
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_inshop_folder_reads_as_products(tmp_path):
    root = tmp_path / "inshop"
    rows = [
        ("img/WOMEN/Dresses/id_00000001/01_1_front.jpg", "id_00000001", "train"),
        ("img/MEN/Denim/id_00000003/01_1_front.jpg", "id_00000003", "gallery"),
    ]
    lines = ["2", "image_name item_id evaluation_status", *(" ".join(r) for r in rows), "broken line"]
    root.mkdir()
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    products = list(iter_catalog(root))
    assert [p.id for p in products] == [r[0] for r in rows]
    assert products[1].attributes == {
        "item_id": "id_00000003",
        "evaluation_status": "gallery",
        "gender": "Men",
        "articleType": "Denim",
    }
    assert products[0].image_uri == str(root.resolve() / rows[0][0])
