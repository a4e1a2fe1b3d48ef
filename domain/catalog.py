"""The catalog: one product type and the readers of every catalog layout.

Three layouts are understood:

* Fashion Product Images: ``styles.csv`` + ``images/<id>.jpg``; text = ``productDisplayName``,
  attributes = the other columns (empty values left out).
* DeepFashion In-shop: ``list_eval_partition.txt`` + ``img/...``; id = the image path, attributes
  ``item_id``, ``gender`` and ``articleType`` (from the path) and ``evaluation_status``.
* A plain folder with ``catalog.jsonl`` or ``catalog.csv``: fields ``id``, ``image`` (a path
  relative to the folder), ``text``; every other field becomes an attribute.

Two ways to read them: :func:`iter_catalog` streams every row as a product (ingest checks each
item itself and reports the bad ones); :func:`load_fashion` and :func:`load_inshop` (training and
evaluation) keep only complete rows with an image file, counting the rest in a :class:`LoadReport`;
they fail only on a missing folder or header.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

log = logging.getLogger("vitrine.catalog")

FASHION_TABLE = "styles.csv"
FASHION_IMAGES = "images"
FASHION_TEXT = "productDisplayName"
INSHOP_TABLE = "list_eval_partition.txt"
PLAIN_TABLES = ("catalog.jsonl", "catalog.csv")
STYLE_COLUMNS = (
    "id",
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "year",
    "usage",
    FASHION_TEXT,
)
REQUIRED_COLUMNS = ("id", "gender", "masterCategory", "subCategory", "articleType")
INSHOP_STATUSES = ("train", "query", "gallery")


class CatalogError(ValueError):
    """The catalog folder or its index file is missing or unusable."""


@dataclass(frozen=True)
class Product:
    """One catalog item: encoded image bytes or an image_uri, title text and string attributes."""

    id: str
    image: bytes = b""
    image_uri: str = ""
    text: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)

    def value(self, column: str) -> str:
        """A catalog column: ``id``, ``productDisplayName`` (the text), else the attribute ('' if unknown)."""
        if column == "id":
            return self.id
        if column == FASHION_TEXT:
            return self.text
        return self.attributes.get(column, "")

    @property
    def item_id(self) -> str:
        """The instance that relevance is judged by: In-shop's ``item_id``, else the product id."""
        return self.attributes.get("item_id") or self.id

    def row(self) -> dict[str, str]:
        """The styles.csv row of this product."""
        return {column: self.value(column) for column in STYLE_COLUMNS}


def fashion_product(row: Mapping[str | None, Any], images: Path) -> Product:
    """A styles.csv row as a product; its image is ``images/<id>.jpg``, empty values are left out."""
    values = {k: v.strip() for k, v in row.items() if k and isinstance(v, str) and v.strip()}
    product_id = values.pop("id", "")
    text = values.pop(FASHION_TEXT, "")
    uri = str(images / f"{product_id}.jpg")
    return Product(id=product_id, image_uri=uri, text=text, attributes=values)


def inshop_product(root: Path, path: str, item_id: str, status: str) -> Product:
    """An In-shop line as a product: gender and articleType come from the image path."""
    parts = Path(path).parts  # img/WOMEN/Dresses/id_00000002/02_1_front.jpg
    attributes = {"item_id": item_id, "evaluation_status": status}
    if len(parts) > 3:
        attributes |= {"gender": parts[1].title(), "articleType": parts[2]}
    return Product(id=path, image_uri=str(root / path), text="", attributes=attributes)


def _inshop_lines(index: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of every non-empty entry line, after the count and header lines."""
    lines = index.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines[2:], start=3):
        cells = line.split()
        if cells:
            yield number, cells


def _fashion(directory: Path) -> Iterator[Product]:
    with (directory / FASHION_TABLE).open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            yield fashion_product(row, directory / FASHION_IMAGES)


def _inshop(directory: Path) -> Iterator[Product]:
    index = directory / INSHOP_TABLE
    for number, cells in _inshop_lines(index):
        if len(cells) != 3:
            log.warning("%s:%d: skipped, expected 'image_name item_id status'", index, number)
            continue
        yield inshop_product(directory, *cells)


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
    raise CatalogError(
        f"{root}: no catalog found; expected {FASHION_TABLE} + {FASHION_IMAGES}/<id>.jpg, "
        f"{INSHOP_TABLE} + img/..., or one of {list(PLAIN_TABLES)} with id,image,text columns"
    )


def iter_catalog(directory: str | Path, limit: int | None = None) -> Iterator[Product]:
    """Every row of a catalog folder as a product (absolute ``image_uri`` paths), up to ``limit``."""
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


@dataclass
class LoadReport:
    """What a loader kept and what it skipped, by reason."""

    kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def skip(self, reason: str) -> None:
        """Count one skipped row."""
        self.skipped[reason] += 1

    def log(self, source: str) -> None:
        """Log the counts (a warning when anything was skipped)."""
        if self.skipped:
            log.warning("%s: kept %d rows, skipped %s", source, self.kept, dict(self.skipped))
        else:
            log.info("%s: kept %d rows", source, self.kept)


@dataclass(frozen=True)
class Catalog:
    """Products in file order plus the load report."""

    products: tuple[Product, ...]
    report: LoadReport
    root: Path

    def __len__(self) -> int:
        return len(self.products)

    def subset(self, keep: list[int]) -> Catalog:
        """A catalog of the products at the given positions."""
        return Catalog(tuple(self.products[i] for i in keep), self.report, self.root)


def load_fashion(folder: str | Path, image_dir: str = FASHION_IMAGES) -> Catalog:
    """Load a Fashion Product Images folder (``styles.csv`` + ``images/<id>.jpg``), complete rows only."""
    root = Path(folder)
    index = root / FASHION_TABLE
    if not index.exists():
        raise CatalogError(f"{root}: no {FASHION_TABLE} (expected columns {', '.join(STYLE_COLUMNS)})")
    images = root / image_dir
    present = {p.stem for p in images.glob("*.jpg")} if images.is_dir() else set()
    report = LoadReport()
    products: list[Product] = []
    seen: set[str] = set()
    with index.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CatalogError(f"{index}: header lacks columns {missing}; found {reader.fieldnames}")
        for row in reader:
            problem = _fashion_problem(row, present, seen)
            if problem:
                report.skip(problem)
                continue
            products.append(fashion_product(row, images))
            seen.add(products[-1].id)
    report.kept = len(products)
    report.log(str(index))
    return Catalog(tuple(products), report, root)


def _fashion_problem(row: dict[str | None, Any], present: set[str], seen: set[str]) -> str:
    """Why a styles.csv row is not kept for training ('' when it is)."""
    if None in row or any(row.get(c) is None for c in STYLE_COLUMNS if c in row):
        return "malformed line"
    if any(not (row.get(c) or "").strip() for c in REQUIRED_COLUMNS):
        return "missing field"
    product_id = row["id"].strip()
    if product_id in seen:
        return "duplicate id"
    return "" if product_id in present else "no image file"


def load_inshop(folder: str | Path) -> dict[str, Catalog]:
    """Load DeepFashion In-shop (``list_eval_partition.txt`` + ``img/...``) as ``{status: Catalog}``.

    Each product's ``articleType`` (and ``subCategory``) is the clothing folder (e.g. ``Dresses``),
    ``gender`` the top folder (``WOMEN``/``MEN``), ``masterCategory`` ``Apparel``, and ``item_id``
    the item id that defines query/gallery relevance.
    """
    root = Path(folder)
    index = root / INSHOP_TABLE
    if not index.exists():
        raise CatalogError(f"{root}: no {INSHOP_TABLE}")
    if len(index.read_text(encoding="utf-8").splitlines()) < 2:
        raise CatalogError(f"{index}: expected a count line and a header line")
    report = LoadReport()
    parts: dict[str, list[Product]] = {s: [] for s in INSHOP_STATUSES}
    for number, cells in _inshop_lines(index):
        if len(cells) != 3 or cells[2] not in INSHOP_STATUSES:
            report.skip("malformed line")
            log.debug("%s:%d: malformed %r", index, number, " ".join(cells))
            continue
        if not (root / cells[0]).exists():
            report.skip("no image file")
            continue
        product = inshop_product(root, *cells)
        article = product.value("articleType")
        extra = {"masterCategory": "Apparel", **({"subCategory": article} if article else {})}
        parts[cells[2]].append(replace(product, attributes={**product.attributes, **extra}))
    report.kept = sum(len(v) for v in parts.values())
    report.log(str(index))
    return {s: Catalog(tuple(v), report, root) for s, v in parts.items()}


def write_styles(products: list[Product], path: str | Path) -> Path:
    """Write products as a standard styles.csv."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(STYLE_COLUMNS))
        writer.writeheader()
        for p in products:
            writer.writerow(p.row())
    return path
