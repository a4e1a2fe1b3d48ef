"""Catalog loaders: Fashion Product Images (``styles.csv`` + ``images/<id>.jpg``) and DeepFashion In-shop.

Rows with a missing required field, a malformed line or no image file are skipped and counted in a
:class:`LoadReport`; loading never fails on bad rows, only on a missing folder or header.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

log = logging.getLogger("vitrine.training.data")

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
    "productDisplayName",
)
REQUIRED_COLUMNS = ("id", "gender", "masterCategory", "subCategory", "articleType")
INSHOP_PARTITION = "list_eval_partition.txt"
INSHOP_STATUSES = ("train", "query", "gallery")


class CatalogError(ValueError):
    """The catalog folder or its index file is missing or unusable."""


@dataclass(frozen=True)
class Product:
    """One catalog item with the Fashion Product Images columns (empty string when unknown)."""

    id: str
    gender: str
    masterCategory: str  # noqa: N815 - the column names of styles.csv
    subCategory: str  # noqa: N815
    articleType: str  # noqa: N815
    baseColour: str = ""  # noqa: N815
    season: str = ""
    year: str = ""
    usage: str = ""
    productDisplayName: str = ""  # noqa: N815
    image: str = ""  # absolute path of the image file
    item_id: str = ""  # instance id (In-shop item id; Fashion: the product id)

    def row(self) -> dict[str, str]:
        """The styles.csv row of this product."""
        return {k: getattr(self, k) for k in STYLE_COLUMNS}

    def metadata(self) -> dict[str, str]:
        """All fields as a plain dict."""
        return asdict(self)


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


def load_fashion(folder: str | Path, image_dir: str = "images") -> Catalog:
    """Load a Fashion Product Images folder (``styles.csv`` + ``images/<id>.jpg``)."""
    root = Path(folder)
    index = root / "styles.csv"
    if not index.exists():
        raise CatalogError(f"{root}: no styles.csv (expected columns {', '.join(STYLE_COLUMNS)})")
    images = root / image_dir
    present = {p.stem: p for p in images.glob("*.jpg")} if images.is_dir() else {}
    report = LoadReport()
    products: list[Product] = []
    seen: set[str] = set()
    with index.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CatalogError(f"{index}: header lacks columns {missing}; found {reader.fieldnames}")
        for row in reader:
            product = _fashion_product(row, present, report, seen)
            if product is not None:
                products.append(product)
                seen.add(product.id)
    report.kept = len(products)
    report.log(str(index))
    return Catalog(tuple(products), report, root)


def _fashion_product(
    row: dict[str, str | None], present: dict[str, Path], report: LoadReport, seen: set[str]
) -> Product | None:
    if None in row or any(row.get(c) is None for c in STYLE_COLUMNS if c in row):
        report.skip("malformed line")
        return None
    values = {c: (row.get(c) or "").strip() for c in STYLE_COLUMNS}
    if any(not values[c] for c in REQUIRED_COLUMNS):
        report.skip("missing field")
        return None
    if values["id"] in seen:
        report.skip("duplicate id")
        return None
    image = present.get(values["id"])
    if image is None:
        report.skip("no image file")
        return None
    return Product(**values, image=str(image), item_id=values["id"])


def load_inshop(folder: str | Path) -> dict[str, Catalog]:
    """Load DeepFashion In-shop (``list_eval_partition.txt`` + ``img/...``) as ``{status: Catalog}``.

    Each product's ``articleType`` is the clothing folder (e.g. ``Dresses``), ``gender`` the top
    folder (``WOMEN``/``MEN``) and ``item_id`` the item id that defines query/gallery relevance.
    """
    root = Path(folder)
    index = root / INSHOP_PARTITION
    if not index.exists():
        raise CatalogError(f"{root}: no {INSHOP_PARTITION}")
    lines = index.read_text().splitlines()
    if len(lines) < 2:
        raise CatalogError(f"{index}: expected a count line and a header line")
    report = LoadReport()
    parts: dict[str, list[Product]] = {s: [] for s in INSHOP_STATUSES}
    for number, line in enumerate(lines[2:], start=3):
        cells = line.split()
        if not cells:
            continue
        if len(cells) != 3 or cells[2] not in INSHOP_STATUSES:
            report.skip("malformed line")
            log.debug("%s:%d: malformed %r", index, number, line)
            continue
        path, item_id, status = cells
        image = root / path
        if not image.exists():
            report.skip("no image file")
            continue
        pieces = Path(path).parts
        gender = pieces[1] if len(pieces) > 3 else ""
        article = pieces[2] if len(pieces) > 3 else ""
        product = Product(
            id=path,
            gender=gender.title(),
            masterCategory="Apparel",
            subCategory=article,
            articleType=article,
            image=str(image),
            item_id=item_id,
        )
        parts[status].append(product)
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


PRODUCT_FIELDS = tuple(f.name for f in fields(Product))
