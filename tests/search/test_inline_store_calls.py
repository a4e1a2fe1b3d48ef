"""Store calls on the event loop's thread for a store that holds the interpreter through its calls
(Edge), in worker threads otherwise; the same results, failures and deadlines either way."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from services.common.config import SearchConfig, StoreConfig
from services.search.core import SearchCore
from services.search.errors import SearchDeadlineExceeded, SearchUnavailable
from services.search.model import SearchOptions, SearchQuery
from services.search.retrieval import Deadline, call_store, query_members
from services.storage.factory import open_store
from services.storage.port import StoreError, VectorStore
from tests.support.search import ALIAS, FaultyStore, SyntheticCatalog, SyntheticEmbedder, search_bundle

CATALOG = SyntheticCatalog()
CFG = SearchConfig(default_top_k=5, min_candidates=30, store_rrf=False)


class ThreadRecorder(FaultyStore):
    """A real store that records the thread of every query and page read (``holds`` as declared)."""

    def __init__(self, inner: VectorStore, holds: bool, failing=()):
        super().__init__(inner, failing=failing)
        self.holds_interpreter = holds
        self.threads: list[threading.Thread] = []

    def query(self, *args, **kwargs):
        self.threads.append(threading.current_thread())
        return super().query(*args, **kwargs)

    def retrieve_keys(self, *args, **kwargs):
        self.threads.append(threading.current_thread())
        return self.inner.retrieve_keys(*args, **kwargs)


@pytest.fixture(scope="module")
def edge(tmp_path_factory) -> Iterator[VectorStore]:
    store = open_store(StoreConfig(backend="edge", path=str(tmp_path_factory.mktemp("edge"))))
    CATALOG.load(store)
    yield store
    store.close()


def test_edge_declares_that_its_calls_hold_the_interpreter(edge):
    assert edge.holds_interpreter is True  # the metered wrapper passes the adapter's answer on
    qdrant = open_store(StoreConfig(backend="qdrant", url=":memory:"))
    try:
        assert qdrant.holds_interpreter is False
    finally:
        qdrant.close()


async def search_ids(store: VectorStore) -> list[str]:
    core = SearchCore(CFG, store, search_bundle(), SyntheticEmbedder(CATALOG), ALIAS)
    result = await core.search(SearchQuery(text="red dress", options=SearchOptions(top_k=5)))
    assert not result.partial
    return [h.id for h in result.hits]


async def test_inline_and_threaded_calls_answer_the_same(edge):
    inline, threaded = ThreadRecorder(edge, holds=True), ThreadRecorder(edge, holds=False)
    assert await search_ids(inline) == await search_ids(threaded)
    here = threading.current_thread()
    assert len(inline.threads) == 2 and all(t is here for t in inline.threads)  # query, page read
    assert len(threaded.threads) == 2 and all(t is not here for t in threaded.threads)


async def test_a_failed_inline_query_falls_back_to_one_member_at_a_time(edge):
    store = ThreadRecorder(edge, holds=True, failing=["m2"])
    vectors = CATALOG.text_vectors("red dress")
    lists = await query_members(
        store, ALIAS, vectors, ["m1", "m2", "m3"], 10, None, Deadline(5.0), resolve=True
    )
    assert sorted(lists.lists) == ["m1", "m3"] and "m2" in lists.failed
    assert lists.collection != ALIAS  # the alias was resolved to the collection that answered


async def test_inline_call_store_maps_failures_and_the_deadline():
    def broken() -> None:
        raise StoreError("shard unavailable (test)")

    with pytest.raises(SearchUnavailable, match="reading items failed"):
        await call_store(Deadline(5.0), "reading items", broken, inline=True)

    def slow() -> str:
        time.sleep(0.05)
        return "late"

    with pytest.raises(SearchDeadlineExceeded, match="reading items did not finish"):
        await call_store(Deadline(0.01), "reading items", slow, inline=True)
    assert await call_store(Deadline(5.0), "reading items", slow, inline=True) == "late"
