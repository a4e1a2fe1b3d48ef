"""The ingest core on a real Edge store: validation, clusters, duplicates, backpressure, delete/count."""

from __future__ import annotations

import os

import numpy as np
import pytest

from domain.payload import holds_version
from services.ingest.core import assign_clusters
from services.ingest.items import Product
from services.storage.port import MemberQuery
from tests.ingest.conftest import BLUE, GREEN, RED, ColourEmbedder, truncated_jpeg
from tests.support.images import solid


def errors_by_index(summary):
    return {e.index: (e.id, e.code, e.message) for e in summary.errors}


async def test_bad_items_are_reported_and_good_ones_land(make_core, bundle, image_root, tmp_path):
    (image_root / "green.png").write_bytes(solid(GREEN, fmt="PNG"))
    outside = tmp_path / "secret.png"
    outside.write_bytes(solid(BLUE, fmt="PNG"))
    (image_root / "link.png").symlink_to(outside)
    core = make_core(bundle, max_image_bytes=50_000)
    products = [
        Product("a", image=solid(RED), text="red shirt", attributes={"articleType": "Shirts"}),
        Product("", image=solid(RED)),
        Product("b", image=b"not an image"),
        Product("c"),
        Product("d", image_uri="green.png", attributes={"articleType": "Tshirts"}),
        Product("e", image_uri="../secret.png"),
        Product("f", image_uri="link.png"),
        Product("g", image_uri="http://127.0.0.1:9/x.jpg"),
        Product("h", image_uri="ftp://host/x.jpg"),
        Product("i", image_uri="missing.png"),
        Product("j", image=os.urandom(60_000)),
        Product("k", image=solid(RED), attributes={"cluster": "7"}),
        Product("l", image=solid(RED), attributes={"bad.name": "x"}),
        Product("m", image=truncated_jpeg()),
        Product("n", image_uri=f"file://{image_root / 'green.png'}"),
    ]
    summary = await core.upsert_stream(products)
    assert (summary.received, summary.upserted, summary.failed) == (15, 3, 12)
    errors = errors_by_index(summary)
    assert errors[1] == ("", "INVALID_ARGUMENT", "id: required")
    assert errors[2][1] == "INVALID_ARGUMENT" and "not a decodable image" in errors[2][2]
    assert errors[3][2] == "image: one of image or image_uri is required"
    assert errors[5][1] == "PERMISSION_DENIED" and "outside the allowed image root" in errors[5][2]
    assert errors[6][1] == "PERMISSION_DENIED"  # a symlink out of the root is refused too
    assert errors[7][1] == "PERMISSION_DENIED" and "allow_http" in errors[7][2]
    assert errors[8][1] == "INVALID_ARGUMENT" and "unsupported scheme 'ftp'" in errors[8][2]
    assert errors[9][1] == "NOT_FOUND"
    assert "exceeds max_image_bytes=50000" in errors[10][2]
    assert "attributes['cluster']: reserved" in errors[11][2]
    assert "attributes['bad.name']" in errors[12][2]
    assert errors[13][:2] == ("m", "INVALID_ARGUMENT")  # caught by the embedder, isolated by splitting
    assert core.store.count("catalog") == 3
    stored = {p.id: p.payload for p in core.store.retrieve("catalog", ["a", "d", "n"])}
    assert stored["a"]["text"] == "red shirt" and stored["a"]["articleType"] == "Shirts"
    assert stored["d"]["image_uri"] == "green.png" and stored["a"]["bundle_version"] == "1"
    assert "image_uri" not in stored["a"]


async def test_clusters_from_centroids(make_core, bundle):
    core = make_core(bundle)
    await core.upsert_stream(
        [Product("r", image=solid(RED)), Product("g", image=solid(GREEN)), Product("b", image=solid(BLUE))]
    )
    payloads = {p.id: p.payload["cluster"] for p in core.store.scroll("catalog")}
    assert payloads == {"r": {"m1": 0, "m2": -1}, "g": {"m1": 1, "m2": -1}, "b": {"m1": 2, "m2": -1}}
    assert (await core.count({"cluster.m1": "1|2"}))[0] == 2
    vectors = [{"m1": np.array([0.1, 0.2, 0.9, 0.0])}, {"m1": np.array([0.9, 0.0, 0.1, 0.0])}]
    assert assign_clusters(vectors, {"m1": bundle.load_centroids()["m1"]}, ["m1", "m2"]) == [
        {"m1": 2, "m2": -1},
        {"m1": 0, "m2": -1},
    ]


async def test_duplicate_ids_keep_the_later_item_and_reingest_is_idempotent(make_core, bundle):
    core = make_core(bundle)
    stream = [
        Product("x", image=solid(RED), attributes={"baseColour": "Red"}),
        *[Product(f"p{i}", image=solid((i * 20, 100, 50))) for i in range(6)],
        Product("x", image=solid(BLUE), attributes={"baseColour": "Blue"}),  # a later batch
        Product("y", image=solid(RED), attributes={"baseColour": "Red"}),
        Product("y", image=solid(GREEN), attributes={"baseColour": "Green"}),  # same batch
    ]
    summary = await core.upsert_stream(stream)
    assert (summary.received, summary.upserted, summary.failed) == (10, 10, 0)
    assert core.store.count("catalog") == 8
    stored = {p.id: p.payload for p in core.store.retrieve("catalog", ["x", "y"])}
    assert stored["x"]["baseColour"] == "Blue" and stored["x"]["cluster"]["m1"] == 2
    assert stored["y"]["baseColour"] == "Green"
    await core.upsert_stream(stream)
    assert core.store.count("catalog") == 8
    hits = core.store.query("catalog", [MemberQuery("m1", [0, 0, 1.0, 0], 1)])["m1"]
    assert hits[0].id == "x"


async def test_backpressure_bounds_items_in_flight(make_core, bundle):
    embed = ColourEmbedder({"m1": 4, "m2": 3}, delay_s=0.01)
    core = make_core(bundle, embed=embed)
    image = solid(RED)
    lags = []

    async def products():
        for i in range(120):
            lags.append(i - core.store.count("catalog"))
            yield Product(f"p{i}", image=image)

    summary = await core.upsert_stream(products())
    assert summary.upserted == 120
    assert max(lags) <= core.max_in_flight == 24
    assert max(lags) > core.cfg.batch_size * core.cfg.queue_batches  # the reader did run ahead
    assert max(embed.calls) <= core.cfg.batch_size


async def test_delete_and_count_with_filters(make_core, bundle):
    core = make_core(bundle)
    kinds = ["Shirts", "Tshirts", "Jeans", "Shirts", "Watches"]
    await core.upsert_stream(
        [Product(f"p{i}", image=solid(RED), attributes={"articleType": k}) for i, k in enumerate(kinds)]
    )
    assert await core.count() == (5, "catalog__tiny-1")
    assert (await core.count({"articleType": "Shirts|Jeans"}))[0] == 3
    assert core.blobs.get("p0") is not None
    assert await core.delete(filters={"articleType": "Shirts"}) == 2
    assert core.blobs.get("p0") is None and core.blobs.get("p1") is not None
    assert await core.delete(ids=["p1", "p4", "nope"], filters={"articleType": "Watches"}) == 1
    assert core.blobs.get("p1") is not None and core.blobs.get("p4") is None
    assert await core.delete(ids=["p1"]) == 1
    assert (await core.count())[0] == 1
    with pytest.raises(ValueError, match="filters\\['articleType'\\]: empty value"):
        await core.count({"articleType": "Shirts|"})
    with pytest.raises(ValueError, match="empty field name"):
        await core.delete(filters={"": "x"})
    with pytest.raises(ValueError, match="needs ids or filters"):
        await core.delete()


async def test_http_images_only_when_allowed(make_core, bundle, tmp_path):
    import functools
    import http.server
    import threading

    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "red.png").write_bytes(solid(RED, fmt="PNG"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "web"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        core = make_core(bundle, allow_http=True)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        summary = await core.upsert_stream(
            [Product("w", image_uri=f"{base}/red.png"), Product("v", image_uri=f"{base}/gone.png")]
        )
    finally:
        server.shutdown()
    assert summary.upserted == 1
    assert summary.errors[0].code == "UNAVAILABLE" and "gone.png" in summary.errors[0].message
    assert core.store.retrieve("catalog", ["w"])[0].payload["cluster"]["m1"] == 0


async def test_blobs_follow_the_latest_image_source(make_core, bundle, image_root):
    (image_root / "g.png").write_bytes(solid(GREEN, fmt="PNG"))
    core = make_core(bundle)
    await core.upsert_stream([Product("p", image=solid(RED))])
    assert core.blobs.get("p") == solid(RED)
    await core.upsert_stream([Product("p", image_uri="g.png")])
    assert core.blobs.get("p") is None  # a reindex now reads the uri, not a stale copy
    assert core.store.retrieve("catalog", ["p"])[0].payload["cluster"]["m1"] == 1


def test_holds_version_knows_a_versions_collections_and_rebuilds():
    canonical = "catalog__fashion-small-2"
    assert holds_version(canonical, canonical)
    assert holds_version(canonical + ".r20261201190000", canonical), "a same-version rebuild"
    assert not holds_version("catalog__fashion-small-1", canonical)
    assert not holds_version("catalog__fashion-small-22", canonical), "a prefix is not the version"
    assert not holds_version(None, canonical)
