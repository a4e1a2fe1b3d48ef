"""The whole stack end to end on a synthetic catalog: ``python -m apps.stack`` + ingest + search.

Real processes on loopback ports, a briefly trained three-member bundle, an Edge store in a temp
dir: load the catalog through Ingest, then check that search answers like a shop expects.
"""

from __future__ import annotations

import csv
import signal

import grpc
import pytest

from tests.support.stack import running_stack
from vitrine.v1 import ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc


@pytest.fixture(scope="module")
def stack(tiny_trained, tmp_path_factory):
    """Start the stack (no web) and load the synthetic catalog; yield (search stub, ingest stub, rows, proc)."""
    bundle, catalog = tiny_trained
    with running_stack(bundle, tmp_path_factory.mktemp("stack-store")) as running:
        load = running.load(catalog)
        assert load.returncode == 0, load.stdout + load.stderr
        with (catalog / "styles.csv").open() as fh:
            rows = {row["id"]: row for row in csv.DictReader(fh)}
        with (
            grpc.insecure_channel(running.addr("search")) as search,
            grpc.insecure_channel(running.addr("ingest")) as ingest,
        ):
            yield search_pb2_grpc.SearchStub(search), ingest_pb2_grpc.IngestStub(ingest), rows, running.proc


def test_every_item_is_indexed(stack):
    _, ingest, rows, _ = stack
    assert ingest.Count(ingest_pb2.CountRequest(), timeout=30).count == len(rows)


def test_text_query_finds_the_right_items(stack):
    search, _, _, _ = stack
    response = search.Search(search_pb2.SearchRequest(text="a red dress", top_k=10, explain=True), timeout=30)
    assert len(response.hits) == 10
    dresses = [h for h in response.hits if h.attributes["articleType"] == "Dresses"]
    red = [h for h in response.hits if h.attributes["baseColour"] == "Red"]
    names = [(h.attributes["articleType"], h.attributes["baseColour"]) for h in response.hits]
    # chance is about 1/7 for the article type, 1/6 for the colour and 1/42 for both
    assert len(red) >= 7, names
    assert len(dresses) >= 3, names
    assert ("Dresses", "Red") in names[:5], names
    assert all(len(h.members) >= 1 for h in response.hits)


def test_image_query_finds_itself_first(stack, tiny_trained):
    search, _, rows, _ = stack
    _, catalog = tiny_trained
    for item_id in list(rows)[:3]:
        image = (catalog / "images" / f"{item_id}.jpg").read_bytes()
        response = search.Search(search_pb2.SearchRequest(image=image, top_k=3), timeout=30)
        assert response.hits[0].id == item_id


def test_filters_hold_and_pages_do_not_overlap(stack):
    search, _, _, _ = stack
    base = dict(text="watches for men", filters={"gender": "Men"})
    first = search.Search(search_pb2.SearchRequest(**base, top_k=5), timeout=30)
    second = search.Search(search_pb2.SearchRequest(**base, top_k=5, offset=5), timeout=30)
    both = search.Search(search_pb2.SearchRequest(**base, top_k=10), timeout=30)
    assert all(h.attributes["gender"] == "Men" for h in both.hits)
    assert [h.id for h in first.hits] + [h.id for h in second.hits] == [h.id for h in both.hits]


def test_bad_request_is_invalid_argument(stack):
    search, _, _, _ = stack
    with pytest.raises(grpc.RpcError) as err:
        search.Search(search_pb2.SearchRequest(top_k=5), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_stack_drains_on_sigterm(stack):
    _, _, _, proc = stack
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
