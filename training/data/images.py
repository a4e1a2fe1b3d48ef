"""Decode a catalog once into a uint8 pixel cache and do cheap tensor augmentations per batch.

Decoding ~40k JPEGs every epoch on two cores costs more than training a small model, so the
member's own eval geometry (resize/crop from ``domain.members.eval_transform``) runs once
per image and the result is stored as ``(N, H, W, 3)`` uint8 in ``<cache_dir>/pixels-<key>.npy``.
Training then only flips, shifts and jitters brightness on tensors.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from domain.catalog import Catalog
from domain.members import eval_transform
from domain.preprocess import SplitTransform, split_transform

log = logging.getLogger("vitrine.training.data")


@dataclass(frozen=True)
class Pixels:
    """Decoded images of a catalog (rows with ``ok == False`` could not be read) and their normalizer."""

    array: np.ndarray  # (N, H, W, 3) uint8, possibly memory-mapped
    ok: np.ndarray  # (N,) bool
    transform: SplitTransform

    def batch(self, positions: np.ndarray | list[int]) -> torch.Tensor:
        """Normalized float32 (B, 3, H, W) tensor of the given rows, no augmentation."""
        arrays = self.array[np.asarray(positions)]
        return self.transform.to_batch(list(arrays))


def geometry_for(model_cfg: dict, preprocess_cfg: dict) -> SplitTransform:
    """The member's eval transform split into per-image geometry and per-batch normalization."""
    transform = split_transform(eval_transform(model_cfg, preprocess_cfg))
    if transform is None:
        raise ValueError("the member's eval transform must end with ToTensor + Normalize")
    return transform


def _decode(path: str, transform: SplitTransform) -> np.ndarray | None:
    try:
        with Image.open(path) as image:
            return transform.pixels(image)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def decode_catalog(catalog: Catalog, transform: SplitTransform, workers: int = 2) -> Pixels:
    """Decode every product image with ``transform``'s geometry; unreadable ones are marked, not raised."""
    probe = transform.pixels(Image.new("RGB", (60, 80)))
    array = np.zeros((len(catalog), *probe.shape), dtype=np.uint8)
    ok = np.zeros(len(catalog), dtype=bool)
    paths = [p.image_uri for p in catalog.products]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(lambda p: _decode(p, transform), paths, chunksize=64)
        for i, pixels in enumerate(
            tqdm(results, total=len(paths), desc="decode", leave=False, mininterval=5)
        ):
            if pixels is not None:
                array[i] = pixels
                ok[i] = True
    bad = int((~ok).sum())
    if bad:
        log.warning("skipped %d unreadable images of %d", bad, len(paths))
    return Pixels(array, ok, transform)


def cached_pixels(
    catalog: Catalog, transform: SplitTransform, cache_dir: Path | None, data_key: str
) -> Pixels:
    """Decoded pixels from ``cache_dir`` when present for this data and geometry, else decode and store."""
    if cache_dir is None:
        return decode_catalog(catalog, transform)
    key = hashlib.sha256(f"{data_key}|{transform.key}|{len(catalog)}".encode()).hexdigest()[:16]
    array_file = cache_dir / f"pixels-{key}.npy"
    ok_file = cache_dir / f"pixels-{key}.ok.json"
    if array_file.exists() and ok_file.exists():
        ok = np.array(json.loads(ok_file.read_text()), dtype=bool)
        return Pixels(np.load(array_file, mmap_mode="r"), ok, transform)
    pixels = decode_catalog(catalog, transform)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = array_file.with_suffix(".tmp.npy")
    np.save(tmp, pixels.array)
    tmp.replace(array_file)
    ok_file.write_text(json.dumps(pixels.ok.tolist()))
    return pixels


def augment(
    pixels: Pixels,
    positions: np.ndarray,
    generator: torch.Generator,
    shift: int = 3,
    jitter: float = 0.1,
    rows: np.ndarray | None = None,
) -> torch.Tensor:
    """Normalized (B, 3, H, W) batch with random horizontal flips, shifts and brightness/contrast jitter.

    ``rows`` keeps only those rows of the batch (a data-parallel shard); the random draws are made
    for the whole batch, so a shard gets exactly the augmentation the full batch would give it.
    """
    count = len(positions)
    flip = torch.rand(count, generator=generator) < 0.5
    offsets = torch.randint(0, 2 * shift + 1, (count, 2), generator=generator) if shift > 0 else None
    gain = bias = None
    if jitter > 0:
        gain = 1.0 + (torch.rand(count, 1, 1, 1, generator=generator) * 2 - 1) * jitter
        bias = (torch.rand(count, 1, 1, 1, generator=generator) * 2 - 1) * jitter / 2
    keep = torch.arange(count) if rows is None else torch.as_tensor(rows, dtype=torch.long)
    chosen = np.asarray(positions)[keep.numpy()]
    batch = torch.from_numpy(np.ascontiguousarray(pixels.array[chosen])).permute(0, 3, 1, 2).float() / 255.0
    _, _, height, width = batch.shape
    flip = flip[keep]
    batch[flip] = batch[flip].flip(-1)
    if offsets is not None:
        padded = torch.nn.functional.pad(batch, (shift, shift, shift, shift), mode="replicate")
        batch = torch.stack(
            [
                padded[i, :, dy : dy + height, dx : dx + width]
                for i, (dy, dx) in enumerate(offsets[keep].tolist())
            ]
        )
    if gain is not None and bias is not None:
        batch = (batch * gain[keep] + bias[keep]).clamp_(0.0, 1.0)
    return (batch - pixels.transform.mean) / pixels.transform.std
