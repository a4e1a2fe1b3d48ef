"""Everything training needs from a catalog folder, prepared once: products, pixels, split, captions, labels."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from domain.catalog import Catalog, load_fashion
from domain.preprocess import SplitTransform
from domain.pretrained_vision import PretrainedVisual
from training.data.features import cached_features
from training.data.images import Pixels, cached_pixels
from training.data.split import Split, make_split
from training.text import CaptionTable, build_caption_table

log = logging.getLogger("vitrine.training.data")


def data_fingerprint(folder: str | Path) -> str:
    """Hash of styles.csv's bytes and the image folder's (name, size) listing."""
    root = Path(folder)
    digest = hashlib.sha256((root / "styles.csv").read_bytes())
    images = root / "images"
    if images.is_dir():
        for entry in sorted(images.iterdir()):
            digest.update(f"{entry.name}:{entry.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


@dataclass
class TrainingData:
    """A loaded catalog (unreadable images dropped), its split and caption table, and pixel caches."""

    catalog: Catalog
    split: Split
    captions: CaptionTable
    data_key: str
    cache_dir: Path | None
    _pixels: dict[str, Pixels] = field(default_factory=dict)
    _features: dict[tuple, np.ndarray] = field(default_factory=dict)

    def positions(self, side: str) -> np.ndarray:
        """Catalog positions of a split side."""
        return np.array(self.split.positions(self.catalog, side), dtype=np.int64)

    def labels(self, field_name: str) -> tuple[np.ndarray, list[str]]:
        """(label index per product, sorted label values) for a product field, or for fields joined by
        ``+`` (one class per combination: ``baseColour+articleType`` gives "Red|Dresses")."""
        fields = field_name.split("+")
        values = ["|".join(p.value(f) for f in fields) for p in self.catalog.products]
        classes = sorted(set(values))
        lookup = {c: i for i, c in enumerate(classes)}
        return np.array([lookup[v] for v in values], dtype=np.int64), classes

    def pixels(self, transform: SplitTransform) -> Pixels:
        """Decoded pixels for a member's geometry (decoded once, cached on disk)."""
        if transform.key not in self._pixels:
            self._pixels[transform.key] = cached_pixels(
                self.catalog, transform, self.cache_dir, self.data_key
            )
        return self._pixels[transform.key]

    def trunk_features(self, visual: PretrainedVisual, pixels: Pixels, device: torch.device) -> np.ndarray:
        """A frozen pretrained trunk's head inputs for every product (computed once, cached on disk)."""
        key = (pixels.transform.key, visual.cfg.trunk, visual.cfg.colour_bins, visual.cut)
        if key not in self._features:
            self._features[key] = cached_features(visual, pixels, self.cache_dir, self.data_key, device)
        return self._features[key]


def prepare(
    folder: str | Path,
    transform: SplitTransform,
    cache_dir: Path | None,
    split_seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    max_items: int = 0,
    name_captions: bool = True,
) -> TrainingData:
    """Load, drop unreadable images (counted), split by product id and build the caption table."""
    catalog = load_fashion(folder)
    if max_items and len(catalog) > max_items:
        keep = np.sort(np.random.default_rng(0).choice(len(catalog), size=max_items, replace=False))
        catalog = catalog.subset(keep.tolist())
    data_key = f"{data_fingerprint(folder)}-{max_items}"
    pixels = cached_pixels(catalog, transform, cache_dir, data_key)
    if not pixels.ok.all():
        keep = np.flatnonzero(pixels.ok)
        catalog.report.skipped["unreadable image"] += int(len(catalog) - len(keep))
        log.warning("dropping %d unreadable images", len(catalog) - len(keep))
        catalog = catalog.subset(keep.tolist())
        data_key += "-readable"
        pixels = Pixels(np.ascontiguousarray(pixels.array[keep]), np.ones(len(keep), bool), transform)
    split = make_split(catalog, split_seed, fractions)
    log.info("split: train %d, val %d, test %d", len(split.train), len(split.val), len(split.test))
    prepared = TrainingData(
        catalog, split, build_caption_table(catalog.products, name_captions), data_key, cache_dir
    )
    prepared._pixels[transform.key] = pixels
    return prepared
