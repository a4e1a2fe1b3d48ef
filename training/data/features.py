"""Frozen-trunk features of a whole catalog, computed once and cached on disk.

A member with a pretrained, frozen image trunk (``domain.pretrained_vision``) trains only its head,
so the trunk's output for each image never changes: it is computed once per catalog, geometry and
trunk (``<cache_dir>/features-<key>.npy``, float16) and every training step and validation reads
rows of it. On two CPU cores that turns a step from a trunk forward over 128 images into a
matrix product, and members sharing a trunk share the cache.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from domain.onnx_trunk import OnnxTrunk
from domain.pretrained_vision import PretrainedVisual
from training.data.images import Pixels

log = logging.getLogger("vitrine.training.data")
BATCH = 256


@torch.inference_mode()
def compute_features(visual: PretrainedVisual, pixels: Pixels, device: torch.device) -> np.ndarray:
    """(N, visual.feature_dim) float16 head inputs for every cached image, with a progress bar.

    On CPU the trunk runs on ONNX Runtime (``domain.onnx_trunk``, about 2.3x torch), as served."""
    visual.eval()
    count = len(pixels.array)
    out = np.zeros((count, visual.feature_dim), dtype=np.float16)
    desc = f"features {visual.cfg.trunk.removeprefix('pkg:')}"
    frozen = visual.frozen_part()
    runtime = OnnxTrunk(frozen, visual.image_size, torch.get_num_threads()) if device.type == "cpu" else None
    for start in tqdm(range(0, count, BATCH), desc=desc, unit="batch", mininterval=5):
        batch = pixels.batch(np.arange(start, min(count, start + BATCH))).to(device)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            out[start : start + len(batch)] = visual.features(batch, runtime).float().cpu().numpy()
    return out


def cached_features(
    visual: PretrainedVisual, pixels: Pixels, cache_dir: Path | None, data_key: str, device: torch.device
) -> np.ndarray:
    """The catalog's head inputs from ``cache_dir`` when present for this data, geometry and trunk,
    else computed and stored (written to a temporary name first, so an interrupt leaves no torn file)."""
    if cache_dir is None:
        return compute_features(visual, pixels, device)
    cfg = visual.cfg
    key = f"{data_key}|{pixels.transform.key}|{len(pixels.array)}|{cfg.trunk}|{cfg.colour_bins}"
    if cfg.tune_stages:  # the cache holds the frozen stages' maps, not the pooled trunk
        key += f"|frozen-to-{visual.cut}"
    array_file = cache_dir / f"features-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"
    if array_file.exists():
        return np.load(array_file, mmap_mode="r")
    features = compute_features(visual, pixels, device)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = array_file.with_suffix(".tmp.npy")
    np.save(tmp, features)
    tmp.replace(array_file)
    log.info("cached %s features of %d images in %s", cfg.trunk, len(features), array_file.name)
    return features
