"""Fit the colour channel (``domain.colour_channel``) and join it to the trained members.

Runs after the members are trained and before validation, so the fusion weights, the calibration
and the admission rule all see the members as they will be served. Small heads, fitted once on the
training split and shared by every member that carries the channel (any member with a Hugging Face
text tower, or those ``members`` names):

* the image head classifies a photo's ``baseColour`` from colour histograms of the member's own
  pixels (cross entropy over the colours with at least ``min_items`` training items): ``heads``
  MLPs on the standardized features, each fitted with dropout from its own seed, their
  distributions averaged (on the shared catalog's test split, over three seed sets, dense
  colour+type 0.493 -> 0.508 against one unstandardized MLP). One image head is fitted per input
  geometry: members that see the same pixels (p0 and p1 at 96 px, padded) share one, and the
  from-scratch m1 (64 px, squashed) has its own, since the histograms' foreground fraction
  depends on the padding;
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
from domain.colour_tower import add_colour_channel, image_colour_head
from domain.members import make_tokenizer
from domain.pretrained_vision import pretrained_visual
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
    members: tuple[str, ...] = ()  # the members that carry the channel (empty: every member that can)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColourFit:
        """Build from the training config's ``colour_channel`` entry; unknown keys are errors."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"colour_channel: unknown keys {unknown}; valid: {sorted(known)}")
        members = data.get("members", [])
        if not isinstance(members, list | tuple) or not all(isinstance(m, str) and m for m in members):
            raise ValueError(f"colour_channel.members: expected a list of member names, got {members!r}")
        fit = cls(**{k: tuple(v) if k in ("bins", "members") else v for k, v in data.items()})
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
    """Whether a member can carry the channel: a Hugging Face text tower (the text head reads its
    pooled output) beside any image tower."""
    return is_hf_tower(model) and getattr(model, "visual", None) is not None


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


def fit_image_head_for(
    run: Any, data: TrainingData, channel: ColourChannelCfg, fit: ColourFit
) -> ImageColourHead:
    """An image head fitted on the training photos as ``run`` sees them (its geometry and pixel
    normalization); the same seed for every geometry, so the result does not depend on the order."""
    torch.manual_seed(fit.seed)
    transform = geometry_for(run.model_cfg, run.preprocess_cfg)
    pixels = data.pixels(transform)
    lookup = {c: i for i, c in enumerate(channel.classes)}
    train = [p for p in data.positions("train") if data.catalog.products[p].value(COLOUR_FIELD) in lookup]
    head = ImageColourHead(channel)
    with torch.inference_mode():
        features = torch.cat(
            [
                head.inputs(pixels.batch(rows), transform.mean, transform.std)
                for rows in np.array_split(np.array(train), max(1, len(train) // 1024))
            ]
        )
    labels = torch.tensor([lookup[data.catalog.products[p].value(COLOUR_FIELD)] for p in train])
    fit_image_head(head, features, F.one_hot(labels, channel.size).float(), fit)
    return head


def fit_text_head(run: Any, data: TrainingData, channel: ColourChannelCfg, fit: ColourFit) -> TextColourHead:
    """The text head, on ``run``'s text tower's pooled output for the training captions and the
    "{colour} {type}" queries (initialized from the global generator where the image head left it,
    as before image heads were fitted per geometry, so a build of p0 and p1 is unchanged)."""
    tokenizer = make_tokenizer(run.model_cfg)
    pooled = cached_pooled(run.model, tokenizer, data.captions.texts, text_key(run), data.cache_dir)
    queries, query_targets = shopper_queries(data, channel.classes)
    inputs = torch.cat([pooled.float(), hf_pooled(run.model, tokenizer, queries).float()])
    targets = torch.from_numpy(np.concatenate([caption_targets(data, channel.classes), query_targets]))
    head = TextColourHead(inputs.shape[1], channel)
    _fit(head, inputs, targets, fit, "text")
    return head


def image_key(run: Any) -> str:
    """What an image head depends on: the member's input geometry and normalization."""
    return geometry_for(run.model_cfg, run.preprocess_cfg).key


def text_key(run: Any) -> str:
    """What a text head depends on: the member's (frozen) Hugging Face text tower."""
    return str(run.model_cfg.get("text_cfg", {}).get("hf_model_name", ""))


def fit_heads(
    runs: Sequence[Any], data: TrainingData, fit: ColourFit
) -> tuple[ColourChannelCfg, dict[str, ImageColourHead], dict[str, TextColourHead]]:
    """Fit the heads on the training split: one image head per input geometry among ``runs``
    (``image_key``) and one text head per text tower (``text_key``); members that share them
    share the heads."""
    classes = colour_classes(data, fit.min_items)
    channel = ColourChannelCfg(tuple(classes), fit.weight, fit.hidden, fit.bins, fit.heads, fit.standardize)
    image_heads: dict[str, ImageColourHead] = {}
    text_heads: dict[str, TextColourHead] = {}
    for run in runs:
        if image_key(run) not in image_heads:
            image_heads[image_key(run)] = fit_image_head_for(run, data, channel, fit)
        if text_key(run) not in text_heads:
            text_heads[text_key(run)] = fit_text_head(run, data, channel, fit)
    return channel, image_heads, text_heads


def member_channel(run: Any, channel: ColourChannelCfg) -> ColourChannelCfg:
    """The channel config as ``run`` carries it: a tower that does not define its pixel
    normalization (any but a pretrained one) gets the member's, which its histograms undo."""
    if pretrained_visual(run.model) is not None:
        return channel
    transform = geometry_for(run.model_cfg, run.preprocess_cfg)
    mean, std = (tuple(round(float(v), 6) for v in t.flatten()) for t in (transform.mean, transform.std))
    return dataclasses.replace(channel, mean=mean, std=std)


def add_colour_channels(runs: Sequence[Any], data: TrainingData, fit: ColourFit) -> list[Any]:
    """The runs with the channel joined to every member that carries it (heads fitted once)."""
    unknown = sorted(set(fit.members) - {run.name for run in runs})
    if unknown:
        raise ValueError(f"colour_channel.members: no member named {unknown}")
    eligible = [
        run for run in runs if carries_channel(run.model) and (not fit.members or run.name in fit.members)
    ]
    if not eligible:
        log.warning("colour_channel: no member has a Hugging Face text tower; none added")
        return list(runs)
    channel, image_heads, text_heads = fit_heads(eligible, data, fit)
    log.info(
        "colour channel: %d colours, weight %.2f, %d image and %d text head(s), on %s",
        channel.size,
        fit.weight,
        len(image_heads),
        len(text_heads),
        [r.name for r in eligible],
    )
    names = {run.name for run in eligible}
    out = []
    for run in runs:
        if run.name in names:
            device = next(run.model.parameters()).device
            carried = member_channel(run, channel)
            add_colour_channel(run.model, carried)
            image_colour_head(run.model).load_state_dict(image_heads[image_key(run)].state_dict())
            run.model.text.proj.colour.load_state_dict(text_heads[text_key(run)].state_dict())
            run.model.to(device).eval()
            run = dataclasses.replace(run, model_cfg={**run.model_cfg, COLOUR_KEY: carried.to_dict()})
        out.append(run)
    return out


__all__ = [
    "ColourFit",
    "add_colour_channels",
    "caption_targets",
    "colour_classes",
    "fit_heads",
    "fit_image_head",
    "fit_image_head_for",
    "fit_text_head",
    "image_key",
    "member_channel",
    "text_key",
    "shopper_queries",
]
