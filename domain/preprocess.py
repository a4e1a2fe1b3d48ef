"""Image preprocessing split in two: per-image geometry, per-batch normalization.

open_clip's eval transform is ``geometry (resize/crop on PIL) -> ToTensor -> Normalize``. Doing
the last two per image costs more than the tiny models' forward pass, so the geometric part runs
per image (in the decode threads) and yields uint8 HWC arrays, and ``ToTensor + Normalize`` runs
once per batch as one vectorized op. The maths is the same (x / 255 - mean) / std in float32.
Members whose geometry is identical share one preprocessed array.

A member's input size (open_clip's ``vision_cfg.image_size``) is one side for a square input or
``[height, width]``: the default pretrained members read the catalog's 3:4 photos at 112 x 84, which
the photo fills without padding (a photo of another shape is padded, as for a square input).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import Compose, Normalize, ToTensor


def input_size(value: Any, where: str = "vision_cfg.image_size") -> tuple[int, int]:
    """``(height, width)`` of a member's input from ``vision_cfg.image_size``: one positive whole
    number (a square) or ``[height, width]``; anything else is a ValueError naming ``where``."""
    sides = (value, value) if isinstance(value, int) else value
    if (
        not isinstance(sides, (list, tuple))
        or len(sides) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sides)
    ):
        raise ValueError(f"{where}: expected a positive whole number or [height, width], got {value!r}")
    return (sides[0], sides[1])


@dataclass(frozen=True)
class SplitTransform:
    """The geometric part of an eval transform plus the normalization constants."""

    geometry: Callable[[Image.Image], Image.Image]
    mean: torch.Tensor  # (1, 3, 1, 1)
    std: torch.Tensor
    key: str  # equal keys -> identical geometry

    def pixels(self, image: Image.Image) -> np.ndarray:
        """uint8 (H, W, 3) array after resize/crop."""
        return np.asarray(self.geometry(image.convert("RGB")), dtype=np.uint8)

    def to_batch(self, arrays: Sequence[np.ndarray]) -> torch.Tensor:
        """Stack uint8 arrays into a normalized float32 (B, 3, H, W) tensor."""
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        return batch.sub_(self.mean).div_(self.std)


def split_transform(transform: Callable) -> SplitTransform | None:
    """Split an open_clip/torchvision ``Compose(... ToTensor, Normalize)``; None if it has another shape."""
    if not isinstance(transform, Compose):
        return None
    steps = list(transform.transforms)
    if len(steps) < 2 or not isinstance(steps[-1], Normalize) or not isinstance(steps[-2], ToTensor):
        return None
    geometric = steps[:-2]
    norm: Normalize = steps[-1]
    mean = torch.tensor(norm.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(norm.std, dtype=torch.float32).view(1, 3, 1, 1)
    key = repr(geometric) + repr(list(norm.mean)) + repr(list(norm.std))
    return SplitTransform(Compose(geometric), mean, std, key)
