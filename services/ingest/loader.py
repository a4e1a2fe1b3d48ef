"""Read a catalog folder as products, and push it through the Ingest RPC or straight into the core.

Two layouts are understood:

* Fashion Product Images: ``styles.csv`` + ``images/<id>.jpg``; text = ``productDisplayName``,
  attributes = the other columns (empty values left out).
* DeepFashion In-shop: ``list_eval_partition.txt`` + ``img/...``; id = the image path, attributes
  ``item_id``, ``gender`` and ``articleType`` (from the path) and ``evaluation_status``.
* A plain folder with ``catalog.jsonl`` or ``catalog.csv``: fields ``id``, ``image`` (a path
  relative to the folder), ``text``; every other field becomes an attribute.

Loads are resumable: point ids are uuid5(product id), so a rerun rewrites the same points and
duplicates nothing; the direct load also skips ids already stored.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
from tqdm import tqdm

from services.ingest.core import IngestCore
from services.ingest.items import Product
from vitrine.v1 import ingest_pb2, ingest_pb2_grpc

log = logging.getLogger("vitrine.ingest.loader")

FASHION_TABLE = "styles.csv"
FASHION_IMAGES = "images"
FASHION_TEXT = "productDisplayName"
INSHOP_TABLE = "list_eval_partition.txt"
PLAIN_TABLES = ("catalog.jsonl", "catalog.csv")


def _fashion(directory: Path) -> Iterator[Product]:
    with (directory / FASHION_TABLE).open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            product_id = (row.pop("id", "") or "").strip()
            text = (row.pop(FASHION_TEXT, "") or "").strip()
            attributes = {k: v.strip() for k, v in row.items() if k and v and v.strip()}
            image = directory / FASHION_IMAGES / f"{product_id}.jpg"
            yield Product(id=product_id, image_uri=str(image), text=text, attributes=attributes)


def _inshop(directory: Path) -> Iterator[Product]:
    lines = (directory / INSHOP_TABLE).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines[2:], start=3):  # a count line, then a header line
        cells = line.split()
        if not cells:
            continue
        if len(cells) != 3:
            log.warning(
                "%s:%d: skipped, expected 'image_name item_id status'", directory / INSHOP_TABLE, number
            )
            continue
        path, item_id, status = cells
        parts = Path(path).parts  # img/WOMEN/Dresses/id_00000002/02_1_front.jpg
        attributes = {"item_id": item_id, "evaluation_status": status}
        if len(parts) > 3:
            attributes |= {"gender": parts[1].title(), "articleType": parts[2]}
        yield Product(id=path, image_uri=str(directory / path), text="", attributes=attributes)


def _plain_rows(table: Path) -> Iterator[dict[str, Any]]:
    with table.open(newline="", encoding="utf-8") as fh:
        if table.suffix == ".jsonl":
            for number, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{table}:{number}: invalid JSON: {exc}") from exc
        else:
            yield from csv.DictReader(fh)


def _plain(directory: Path, table: Path) -> Iterator[Product]:
    for row in _plain_rows(table):
        product_id = str(row.pop("id", "") or "").strip()
        image = str(row.pop("image", "") or "").strip()
        text = str(row.pop("text", "") or "").strip()
        attributes = {k: str(v).strip() for k, v in row.items() if k and v is not None and str(v).strip()}
        uri = str(image if Path(image).is_absolute() else directory / image) if image else ""
        yield Product(id=product_id, image_uri=uri, text=text, attributes=attributes)


def catalog_table(directory: str | Path) -> Path:
    """The table that describes a catalog folder; ValueError naming the expected layouts if none."""
    root = Path(directory).resolve()
    for name in (FASHION_TABLE, INSHOP_TABLE, *PLAIN_TABLES):
        if (root / name).is_file():
            return root / name
    raise ValueError(
        f"{root}: no catalog found; expected {FASHION_TABLE} + {FASHION_IMAGES}/<id>.jpg, "
        f"{INSHOP_TABLE} + img/..., or one of {list(PLAIN_TABLES)} with id,image,text columns"
    )


def iter_catalog(directory: str | Path, limit: int | None = None) -> Iterator[Product]:
    """Products of a catalog folder, with absolute ``image_uri`` paths, up to ``limit``."""
    table = catalog_table(directory)
    if table.name == FASHION_TABLE:
        products = _fashion(table.parent)
    elif table.name == INSHOP_TABLE:
        products = _inshop(table.parent)
    else:
        products = _plain(table.parent, table)
    for count, product in enumerate(products):
        if limit is not None and count >= limit:
            return
        yield product


def with_image_bytes(products: Iterable[Product]) -> Iterator[Product]:
    """Products carrying their image bytes (for an ingest server that cannot read our disk)."""
    for product in products:
        path = Path(product.image_uri)
        data = path.read_bytes() if product.image_uri and path.is_file() else b""
        yield replace(product, image=data)


def to_proto(product: Product) -> ingest_pb2.Product:
    """The wire form of a product."""
    return ingest_pb2.Product(
        id=product.id,
        image=product.image,
        image_uri=product.image_uri,
        text=product.text,
        attributes=dict(product.attributes),
    )


@dataclass
class LoadReport:
    """Totals over every stream of a load."""

    received: int = 0
    upserted: int = 0
    failed: int = 0
    skipped: int = 0
    collection: str = ""


async def _requests(products: Iterator[Product], count: int, bar: tqdm) -> AsyncIterator[ingest_pb2.Product]:
    for _, product in zip(range(count), products, strict=False):
        bar.update(1)
        yield to_proto(product)


async def load_via_rpc(
    channel: grpc.aio.Channel,
    products: Iterable[Product],
    *,
    stream_size: int = 2000,
    total: int | None = None,
) -> LoadReport:
    """Send products as Upsert streams of ``stream_size`` (a failure costs one stream, not the load)."""
    stub = ingest_pb2_grpc.IngestStub(channel)
    report = LoadReport()
    iterator = iter(products)
    with tqdm(total=total, unit="item", desc="ingest") as bar:
        while True:
            before = bar.n
            summary = await stub.Upsert(_requests(iterator, stream_size, bar))
            if bar.n == before:
                break
            report.received += summary.received
            report.upserted += summary.upserted
            report.failed += summary.failed
            report.collection = summary.collection
            for error in summary.errors:
                log.warning(
                    "item failed", extra={"id": error.id, "code": error.code, "reason": error.message}
                )
            bar.set_postfix(failed=report.failed)
    return report


async def load_direct(
    core: IngestCore, products: Iterable[Product], *, total: int | None = None, bulk: bool = False
) -> LoadReport:
    """Stream products straight into an :class:`IngestCore`, skipping ids already stored, then optimize.

    ``bulk``: index building is switched off (``set_indexing(False)``, HNSW m=0) while the products
    upload, and the index is built once at the end; it is switched back on even when the load fails.
    """
    targets = [c for c in (core.collection, core.mirror) if c]
    if bulk:
        for name in targets:
            await asyncio.to_thread(core.store.set_indexing, name, False)
        log.info("bulk load: index building is off until the upload ends", extra={"collections": targets})
    begin = time.perf_counter()
    try:
        with tqdm(total=total, unit="item", desc="ingest (bulk)" if bulk else "ingest") as bar:

            def counted() -> Iterator[Product]:
                for product in products:
                    bar.update(1)
                    yield product

            summary = await core.upsert_stream(counted(), skip_existing=True)
    finally:
        if bulk:
            for name in targets:
                await asyncio.to_thread(core.store.set_indexing, name, True)
    uploaded_s = time.perf_counter() - begin
    for error in summary.errors:
        log.warning("item failed", extra={"id": error.id, "code": error.code, "reason": error.message})
    log.info(
        "upload done; building the index once (this can take minutes on a large catalog)",
        extra={"collection": core.collection, "upserted": summary.upserted, "upload_s": round(uploaded_s, 1)},
    )
    begin = time.perf_counter()
    await asyncio.to_thread(core.store.optimize, core.collection)  # build the index after the load
    log.info(
        "index built",
        extra={"collection": core.collection, "build_s": round(time.perf_counter() - begin, 1), "bulk": bulk},
    )
    return LoadReport(summary.received, summary.upserted, summary.failed, summary.skipped, summary.collection)
