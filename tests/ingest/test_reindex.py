"""Reindex with no downtime: a reader querying the alias in a loop never fails or comes back empty."""

from __future__ import annotations

import asyncio
import threading

import pytest

from services.ingest.items import Product
from services.ingest.reindex import ReindexIncomplete, ReindexRefused, reindex
from services.storage.port import MemberQuery
from tests.ingest.conftest import BLUE, GREEN, RED, write_tiny_bundle
from tests.support.images import solid

COLOURS = [RED, GREEN, BLUE]


def catalog(n: int = 24) -> list[Product]:
    return [
        Product(
            f"p{i}", image=solid(COLOURS[i % 3]), text=f"item {i}", attributes={"articleType": f"t{i % 4}"}
        )
        for i in range(n)
    ]


class AliasReader:
    """Queries the catalog alias in a thread until stopped; records errors and empty answers."""

    def __init__(self, store, member: str, vector: list[float]) -> None:
        self.store, self.query = store, MemberQuery(member, vector, 5)
        self.errors: list[BaseException] = []
        self.empty = self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                hits = self.store.query("catalog", [self.query])[self.query.member]
                self.answers += 1
                self.empty += not hits
            except BaseException as exc:  # noqa: BLE001 - the test reports whatever went wrong
                self.errors.append(exc)

    def __enter__(self) -> AliasReader:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


async def test_same_version_rebuild_swaps_alias_under_live_reads(make_core, bundle, image_root):
    (image_root / "g.png").write_bytes(solid(GREEN, fmt="PNG"))
    core = make_core(bundle)
    await core.upsert_stream(
        [*catalog(), Product("uri", image_uri="g.png", attributes={"articleType": "t9"})]
    )
    before = core.store.resolve_alias("catalog")
    with AliasReader(core.store, "m1", [1.0, 0, 0, 0]) as reader:
        result = await reindex(core)
        await asyncio.sleep(0.05)
    assert reader.errors == [] and reader.empty == 0 and reader.answers > 0
    assert result.old_collection == before == "catalog__tiny-1"
    assert result.new_collection.startswith("catalog__tiny-1.r") and core.collection == result.new_collection
    assert core.store.resolve_alias("catalog") == result.new_collection
    assert (result.summary.upserted, result.summary.failed) == (25, 0)
    assert core.store.count("catalog") == core.store.count(before) == 25
    rebuilt = core.store.retrieve("catalog", ["p4", "uri"])
    assert rebuilt[0].payload["articleType"] == "t0" and rebuilt[0].payload["text"] == "item 4"
    assert rebuilt[1].payload["image_uri"] == "g.png" and rebuilt[1].payload["cluster"]["m1"] == 1
    await core.upsert_stream([Product("late", image=solid(RED))])
    assert core.store.count("catalog") == 26  # writes now go to the new collection


async def test_new_bundle_version_is_filled_then_swapped(make_core, bundle, tmp_path):
    old_core = make_core(bundle)
    await old_core.upsert_stream(catalog(12))
    new_bundle = write_tiny_bundle(tmp_path / "bundle2", version="2", m2_dim=5)
    new_core = make_core(new_bundle)
    assert new_core.collection == "catalog__tiny-2"
    assert new_core.store.resolve_alias("catalog") == "catalog__tiny-1"  # search stays on v1 for now
    await new_core.upsert_stream([Product("p0", image=solid(BLUE), attributes={"articleType": "newer"})])
    with AliasReader(new_core.store, "m1", [0, 0, 1.0, 0]) as reader:
        result = await reindex(new_core)
    assert reader.errors == [] and reader.empty == 0
    assert (result.old_collection, result.new_collection) == ("catalog__tiny-1", "catalog__tiny-2")
    assert (result.summary.upserted, result.summary.skipped) == (11, 1)
    assert new_core.store.count("catalog") == 12
    p0 = new_core.store.retrieve("catalog", ["p0"], with_vectors=True)[0]
    assert p0.payload["articleType"] == "newer" and p0.payload["bundle_version"] == "2"  # not overwritten
    assert len(p0.vectors["m2"]) == 5


async def test_reindex_refusals(make_core, bundle):
    core = make_core(bundle)
    await core.upsert_stream(catalog(3))
    core.store.swap_alias("catalog", core.collection)
    core.blobs.delete(["p1"])  # its image is gone: it cannot be re-embedded
    with pytest.raises(ReindexIncomplete, match="1 products failed"):
        await reindex(core)
    assert core.store.resolve_alias("catalog") == "catalog__tiny-1"
    async with core.reindex_lock:
        with pytest.raises(ReindexRefused, match="already running"):
            await reindex(core)


async def test_reindex_from_source_dir(make_core, bundle, image_root):
    folder = image_root / "shop"
    (folder / "img").mkdir(parents=True)
    lines = []
    for i, colour in enumerate(COLOURS):
        (folder / "img" / f"{i}.png").write_bytes(solid(colour, fmt="PNG"))
        lines.append(f'{{"id": "s{i}", "image": "img/{i}.png", "text": "shop item {i}", "gender": "Women"}}')
    (folder / "catalog.jsonl").write_text("\n".join(lines) + "\n")
    core = make_core(bundle)
    await core.upsert_stream(catalog(2))
    result = await reindex(core, str(folder))
    assert result.summary.upserted == 3
    assert sorted(p.id for p in core.store.scroll("catalog")) == ["s0", "s1", "s2"]
    assert core.store.retrieve("catalog", ["s2"])[0].payload["cluster"]["m1"] == 2
