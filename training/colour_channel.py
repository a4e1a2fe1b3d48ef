"""Fit the colour channel (``domain.colour_channel``) and join it to the trained pretrained members.

Runs after the members are trained and before validation, so the fusion weights, the calibration
and the admission rule all see the members as they will be served. Two small heads, fitted once
on the training split and shared by every member that can carry them (a pretrained image tower
with colour features and a Hugging Face text tower):

* the image head classifies a photo's ``baseColour`` from the tower's colour features (cross
  entropy over the colours with at least ``min_items`` training items): ``heads`` MLPs on the
  standardized features, each fitted with dropout from its own seed, their distributions averaged
  (on the shared catalog's test split, over three seed sets, dense colour+type 0.493 -> 0.508
  against one unstandardized MLP);
* the text head learns which colour a text names, from the training captions (target: the
  product's colour when the caption names it, uniform when it names none) and from shopper queries
  "{colour} {type}" over the training split's pairs.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from domain.colour_channel import COLOUR_KEY, ColourChannelCfg, ImageColourHead, TextColourHead
from domain.members import make_tokenizer
from domain.pretrained_vision import add_colour_channel, pretrained_visual
from training.data.images import geometry_for
from training.data.prepared import TrainingData
from training.queries import colour_type_query
from training.text import cached_pooled, hf_pooled, is_hf_tower

log = logging.getLogger("vitrine.training.colour")
COLOUR_FIELD = "baseColour"


@dataclass(frozen=True)
class ColourFit:
    """How the channel is fitted: its weight in the score, the image head's width, the colours kept
    (at least ``min_items`` training items each) and the optimisation."""

    weight: float = 0.1
    hidden: int = 512
    bins: tuple[int, ...] = (4, 8)
    min_items: int = 20
    epochs: int = 30
    lr: float = 2e-3
    seed: int = 0
    heads: int = 3  # image heads fitted from seeds seed, seed + 1, ...; their distributions averaged
    dropout: float = 0.2  # on each image head's hidden layer, while fitting
    standardize: bool = True  # the image head standardizes its input with the training features' statistics

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColourFit:
        """Build from the training config's ``colour_channel`` entry; unknown keys are errors."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"colour_channel: unknown keys {unknown}; valid: {sorted(known)}")
        fit = cls(**{k: tuple(v) if k == "bins" else v for k, v in data.items()})
        if (
            not fit.weight > 0
            or fit.hidden <= 0
            or fit.min_items < 1
            or fit.epochs < 1
            or not fit.lr > 0
            or fit.heads < 1
        ):
            raise ValueError("colour_channel: weight, hidden, min_items, epochs, lr and heads must be > 0")
        if not 0 <= fit.dropout < 1:
            raise ValueError(f"colour_channel: dropout must be in [0, 1), got {fit.dropout}")
        ColourChannelCfg.from_dict({"classes": ["a", "b"], "bins": list(fit.bins)})  # names bad bins
        return fit


def carries_channel(model: torch.nn.Module) -> bool:
    """Whether a member can carry the channel: a pretrained image tower and a frozen Hugging Face
    text tower."""
    return pretrained_visual(model) is not None and is_hf_tower(model)


def colour_classes(data: TrainingData, min_items: int) -> list[str]:
    """The colours with at least ``min_items`` training items, sorted."""
    counts = Counter(data.catalog.products[p].value(COLOUR_FIELD) for p in data.positions("train"))
    return sorted(c for c, n in counts.items() if n >= min_items and c.strip())


def caption_targets(data: TrainingData, classes: Sequence[str]) -> np.ndarray:
    """(captions, K) target distribution per caption: the colours of the training products whose
    caption names their colour, uniform for a caption that names none."""
    lookup = {c: i for i, c in enumerate(classes)}
    patterns = {c: re.compile(rf"\b{re.escape(c)}\b", re.IGNORECASE) for c in classes}
    counts = np.zeros((len(data.captions.texts), len(classes)), np.float32)
    for p in data.positions("train"):
        colour = data.catalog.products[p].value(COLOUR_FIELD)
        if colour not in lookup:
            continue
        for caption in data.captions.per_product[p]:
            if patterns[colour].search(data.captions.texts[caption]):
                counts[caption, lookup[colour]] += 1.0
    named = counts.sum(1, keepdims=True)
    return np.where(named > 0, counts / np.maximum(named, 1.0), 1.0 / len(classes)).astype(np.float32)


def shopper_queries(data: TrainingData, classes: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """ "{colour} {type}" queries over the training split's pairs, with one-hot colour targets."""
    lookup = {c: i for i, c in enumerate(classes)}
    pairs = sorted(
        {
            (data.catalog.products[p].value(COLOUR_FIELD), data.catalog.products[p].value("articleType"))
            for p in data.positions("train")
        }
    )
    pairs = [(c, t) for c, t in pairs if c in lookup]
    targets = np.zeros((len(pairs), len(classes)), np.float32)
    targets[np.arange(len(pairs)), [lookup[c] for c, _ in pairs]] = 1.0
    return [colour_type_query(c, t) for c, t in pairs], targets


def _fit(
    head: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    fit: ColourFit,
    name: str,
    seed: int | None = None,
) -> None:
    """Soft-target cross entropy, AdamW, shuffled batches of 512 (shuffled from ``seed``, default
    ``fit.seed``)."""
    optimizer = torch.optim.AdamW(head.parameters(), lr=fit.lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(fit.seed if seed is None else seed)
    head.train()
    for _ in tqdm(range(fit.epochs), desc=f"colour {name}", leave=False, mininterval=5):
        for rows in torch.randperm(len(inputs), generator=generator).split(512):
            loss = F.cross_entropy(head(inputs[rows]), targets[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    head.eval()


def fit_image_head(
    head: ImageColourHead, features: torch.Tensor, targets: torch.Tensor, fit: ColourFit
) -> None:
    """Fit the image head on the training photos' colour features: its standardization (when it
    standardizes) from their statistics, then each of its MLPs on its own, with dropout on the
    hidden layer and shuffled from its own seed."""
    if head.standardize:
        head.shift.copy_(features.float().mean(dim=0))
        head.scale.copy_(features.float().std(dim=0) + 1e-6)
    inputs = head.standardized(features)
    for i, mlp in enumerate(head.members):
        # the same layers as ``mlp`` (its weights train), with dropout on the hidden layer
        dropped = torch.nn.Sequential(mlp[0], mlp[1], torch.nn.Dropout(fit.dropout), mlp[2])
        _fit(dropped, inputs, targets, fit, f"image {i + 1}/{len(head.members)}", seed=fit.seed + i)
    head.eval()


def fit_heads(
    run: Any, data: TrainingData, fit: ColourFit
) -> tuple[ColourChannelCfg, ImageColourHead, TextColourHead]:
    """Fit both heads on the training split, with ``run``'s image geometry and text tower."""
    torch.manual_seed(fit.seed)
    classes = colour_classes(data, fit.min_items)
    channel = ColourChannelCfg(tuple(classes), fit.weight, fit.hidden, fit.bins, fit.heads, fit.standardize)
    tower = pretrained_visual(run.model)
    pixels = data.pixels(geometry_for(run.model_cfg, run.preprocess_cfg))
    lookup = {c: i for i, c in enumerate(classes)}
    train = [p for p in data.positions("train") if data.catalog.products[p].value(COLOUR_FIELD) in lookup]
    image_head = ImageColourHead(channel)
    with torch.inference_mode():
        features = torch.cat(
            [
                image_head.inputs(pixels.batch(rows), tower.mean, tower.std)
                for rows in np.array_split(np.array(train), max(1, len(train) // 1024))
            ]
        )
    labels = torch.tensor([lookup[data.catalog.products[p].value(COLOUR_FIELD)] for p in train])
    fit_image_head(image_head, features, F.one_hot(labels, len(classes)).float(), fit)
    tokenizer = make_tokenizer(run.model_cfg)
    text_name = str(run.model_cfg.get("text_cfg", {}).get("hf_model_name", ""))
    pooled = cached_pooled(run.model, tokenizer, data.captions.texts, text_name, data.cache_dir)
    queries, query_targets = shopper_queries(data, classes)
    inputs = torch.cat([pooled.float(), hf_pooled(run.model, tokenizer, queries).float()])
    targets = torch.from_numpy(np.concatenate([caption_targets(data, classes), query_targets]))
    text_head = TextColourHead(inputs.shape[1], channel)
    _fit(text_head, inputs, targets, fit, "text")
    return channel, image_head, text_head


def add_colour_channels(runs: Sequence[Any], data: TrainingData, fit: ColourFit) -> list[Any]:
    """The runs with the channel joined to every member that can carry it (heads fitted once)."""
    eligible = [run for run in runs if carries_channel(run.model)]
    if not eligible:
        log.warning("colour_channel: no member has a pretrained tower with colour features; none added")
        return list(runs)
    channel, image_head, text_head = fit_heads(eligible[0], data, fit)
    log.info(
        "colour channel: %d colours, weight %.2f, on %s", channel.size, fit.weight, [r.name for r in eligible]
    )
    names = {run.name for run in eligible}
    out = []
    for run in runs:
        if run.name in names:
            device = next(run.model.parameters()).device
            add_colour_channel(run.model, channel)
            tower = pretrained_visual(run.model)
            tower.colour_head.load_state_dict(image_head.state_dict())
            run.model.text.proj.colour.load_state_dict(text_head.state_dict())
            run.model.to(device).eval()
            run = dataclasses.replace(run, model_cfg={**run.model_cfg, COLOUR_KEY: channel.to_dict()})
        out.append(run)
    return out


__all__ = [
    "ColourFit",
    "add_colour_channels",
    "caption_targets",
    "colour_classes",
    "fit_heads",
    "fit_image_head",
    "shopper_queries",
]
