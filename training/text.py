"""Caption tables and the text side of training.

All captions of the training items are collected once into a table of unique strings. A member
with a frozen Hugging Face text tower (LiT) encodes every unique caption once through the tower's
transformer and pooler (cached on disk, shared by members with the same tower) and trains only the
projection on top; a member with an open_clip text transformer tokenizes the table once and runs
its tower every step.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from domain.catalog import Product
from training.data.prompts import CATEGORY_FIELDS, captions, category_query

log = logging.getLogger("vitrine.training.text")


@dataclass(frozen=True)
class CaptionTable:
    """Unique caption strings plus, per product position, the caption ids it may be paired with."""

    texts: tuple[str, ...]
    per_product: tuple[np.ndarray, ...]
    class_prompt: dict[str, int]  # category value -> caption id of "a photo of {value}"

    def sample(self, positions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One caption id per position, drawn uniformly from that product's captions."""
        return np.array([rng.choice(self.per_product[p]) for p in positions], dtype=np.int64)


def build_caption_table(products: Sequence[Product], with_names: bool = True) -> CaptionTable:
    """Captions of every product (templates, and names when ``with_names``), deduplicated, plus one
    class prompt per category value."""
    index: dict[str, int] = {}
    texts: list[str] = []

    def intern(text: str) -> int:
        if text not in index:
            index[text] = len(texts)
            texts.append(text)
        return index[text]

    per_product = tuple(
        np.array([intern(c) for c in captions(p, with_name=with_names)] or [intern(p.value("articleType"))])
        for p in products
    )
    values = sorted({p.value(f) for p in products for f in CATEGORY_FIELDS})
    class_prompt = {v: intern(category_query(v)) for v in values}
    return CaptionTable(tuple(texts), per_product, class_prompt)


def is_hf_tower(model: torch.nn.Module) -> bool:
    """True when the model's text tower is a Hugging Face encoder (open_clip HFTextEncoder)."""
    return hasattr(getattr(model, "text", None), "transformer") and hasattr(model.text, "pooler")


@torch.inference_mode()
def hf_pooled(model: torch.nn.Module, tokenizer, texts: Sequence[str], batch: int = 512) -> torch.Tensor:
    """Pooled (pre-projection) outputs of a frozen HF text tower for ``texts``."""
    tower = model.text
    pad = tower.config.pad_token_id
    device = next(tower.parameters()).device
    tokens = tokenizer(list(texts))
    lengths = (tokens != pad).sum(dim=1)
    order = torch.argsort(lengths, stable=True)  # similar lengths together: trim padding per batch
    pooled = torch.zeros(len(texts), tower.config.hidden_size)
    for start in tqdm(range(0, len(texts), batch), desc="text", leave=False, mininterval=5):
        rows = order[start : start + batch]
        width = int(lengths[rows].max())
        chunk = tokens[rows, :width].to(device)
        mask = (chunk != pad).long()
        hidden = tower.transformer(input_ids=chunk, attention_mask=mask)
        pooled[rows] = tower.pooler(hidden, mask).float().cpu()
    return pooled


def cached_pooled(
    model: torch.nn.Module, tokenizer, texts: Sequence[str], tower_name: str, cache_dir: Path | None
) -> torch.Tensor:
    """``hf_pooled`` with an on-disk cache keyed by the tower name and the texts."""
    if cache_dir is None:
        log.info("encoding %d unique captions with the frozen text tower", len(texts))
        return hf_pooled(model, tokenizer, texts)
    key = hashlib.sha256(("\n".join([tower_name, *texts])).encode()).hexdigest()[:16]
    file = cache_dir / f"text-{key}.npy"
    if file.exists():
        return torch.from_numpy(np.load(file))
    log.info("encoding %d unique captions with the frozen text tower (cached in %s)", len(texts), file)
    pooled = hf_pooled(model, tokenizer, texts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(file, pooled.numpy())
    return pooled


class TextSide:
    """Turns caption ids into normalized text features for a member during training."""

    def __init__(
        self, model: torch.nn.Module, tokenizer, table: CaptionTable, tower_name: str, cache_dir: Path | None
    ):
        self.frozen_hf = is_hf_tower(model)
        if self.frozen_hf:
            self.table = cached_pooled(model, tokenizer, table.texts, tower_name, cache_dir)
        else:
            self.table = tokenizer(list(table.texts))

    def to(self, device: torch.device) -> TextSide:
        """Move the table to ``device``."""
        self.table = self.table.to(device)
        return self

    def features(self, model: torch.nn.Module, caption_ids: torch.Tensor) -> torch.Tensor:
        """L2-normalized text features of the given captions (gradients flow into trainable parts)."""
        unique, inverse = torch.unique(caption_ids, return_inverse=True)
        rows = self.table[unique]
        if self.frozen_hf:
            features = F.normalize(model.text.proj(rows.float()), dim=-1)
        else:
            features = model.encode_text(rows, normalize=True)
        return features[inverse]
