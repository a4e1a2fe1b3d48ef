"""A colour channel appended to a member's vectors.

Contrastive members rank article types well and colours poorly: ImageNet trunks are trained to
ignore colour, and a caption's colour word is a small part of its text vector. The channel adds
``K`` dimensions (one per catalog colour) to both towers of a member:

* image side: an MLP on colour histograms of the photo's non-white pixels (4 and 8 bins per
  channel) predicts the photo's colour; the channel holds ``sqrt(w) * p / ||p||`` (constant norm, so every
  image vector keeps the same length);
* text side: a linear head on the text tower's pooled features predicts the colour a query names;
  the channel holds ``sqrt(w) * (q - 1/K)``, centred so that a query naming no colour (``q``
  uniform) adds the same to every item's score and leaves the ranking as it was.

The member's own vector is normalized before the channel is joined, so the score of a text query
against an image is ``cos(member) + w * <q - 1/K, p / ||p||>``: colour evidence added to the
member's. A member's open_clip config names the channel under ``vitrine_colour``::

    "vitrine_colour": {"classes": ["Black", "Blue", ...], "weight": 0.1, "hidden": 512, "bins": [4, 8]}

The heads are trained after the member (``training.colour_channel``) and joined to its towers by
``domain.colour_tower`` (a pretrained tower or any other); image queries leave the
channel out (``domain.query_vectors.image_query_vector``), so "more like this photo" stays about the
article type.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

COLOUR_KEY = "vitrine_colour"
WHITE = 0.92  # a pixel whose every channel is above this (in [0, 1]) is background


def colour_features(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, bins: int) -> torch.Tensor:
    """(B, bins**3 + 4): RGB histogram of the non-white pixels, their mean RGB and their fraction.

    ``images`` are normalized (B, 3, H, W); ``mean``/``std`` undo the normalization.
    """
    return colour_histograms(images, mean, std, (bins,))[bins]


def colour_histograms(
    images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, bins: Iterable[int]
) -> dict[int, torch.Tensor]:
    """``{b: colour_features(images, mean, std, b)}`` for every ``b`` in ``bins``, in one pass.

    The pixels are scaled once to ``[0, finest]``; the finest histogram is counted once and a
    coarser one whose bin count divides it by a power of two is summed from it
    (``floor(8x) // 2 == floor(4x)``); others are counted on their own.
    """
    wanted = sorted(set(bins), reverse=True)
    finest = wanted[0]
    batch, _, height, width = images.shape
    y = torch.addcmul(mean * finest, images.float(), std * finest)  # the pixels in [0, finest]
    foreground = y.amin(dim=1).flatten(1) <= WHITE * finest  # (B, HW)
    weights = foreground.float()
    n = weights.sum(1, keepdim=True).clamp_(min=1.0)
    sums = torch.bmm(y.flatten(2), weights.unsqueeze(-1)).squeeze(-1)  # in-range pixels: no clamp
    tail = torch.cat([sums / (n * finest), n / (height * width)], dim=1)
    counted = {finest: _count(y, foreground, finest)}
    out: dict[int, torch.Tensor] = {}
    for b in wanted:
        source = next((f for f in counted if f % b == 0 and _power_of_two(f // b)), None)
        if source is None:
            counted[b] = _count(torch.addcmul(mean * b, images.float(), std * b), foreground, b)
            source = b
        m = source // b
        counts = counted[source].view(batch, b, m, b, m, b, m).sum(dim=(2, 4, 6)).flatten(1)
        out[b] = torch.cat([counts / n, tail], dim=1)
    return out


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def _count(scaled: torch.Tensor, foreground: torch.Tensor, bins: int) -> torch.Tensor:
    """(B, bins**3) counts of the foreground pixels per RGB bin; ``scaled`` holds the pixels in
    ``[0, bins]`` (B, 3, H, W)."""
    batch = scaled.shape[0]
    q = scaled.flatten(2).floor().clamp_(0, bins - 1)  # (B, 3, HW), small whole numbers
    index = (q[:, 0] * bins + q[:, 1]).mul_(bins).add_(q[:, 2])  # exact in float32
    cells = bins**3 + 1  # the last cell collects the background
    index = torch.where(foreground, index, float(cells - 1)).long()
    index += torch.arange(batch, device=scaled.device).unsqueeze(1) * cells
    counts = torch.bincount(index.flatten(), minlength=batch * cells).view(batch, cells)
    return counts[:, :-1].float()


@dataclass(frozen=True)
class ColourChannelCfg:
    """The channel's colour classes (index = dimension), its weight in the score and the image
    head's hidden width."""

    classes: tuple[str, ...]
    weight: float = 0.1
    hidden: int = 512
    bins: tuple[int, ...] = (4, 8)  # colour histograms (per-channel bins) the image head reads
    heads: int = 1  # image heads whose predicted distributions are averaged
    standardize: bool = False  # the image head standardizes its input (per-feature shift and scale)
    # the member's pixel normalization, which the histograms undo; only for an image tower that
    # does not define its own (a pretrained tower does: domain.colour_tower)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def size(self) -> int:
        """Number of dimensions the channel adds to the member's vectors."""
        return len(self.classes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColourChannelCfg:
        """Build from a model config's ``vitrine_colour`` entry; unknown keys are errors."""
        known = {"classes", "weight", "hidden", "bins", "heads", "standardize", "mean", "std"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{COLOUR_KEY}: unknown keys {unknown}; valid: {sorted(known)}")
        defaults = cls(())
        cfg = cls(
            tuple(data.get("classes", ())),
            float(data.get("weight", defaults.weight)),
            int(data.get("hidden", defaults.hidden)),
            tuple(int(b) for b in data.get("bins", defaults.bins)),
            int(data.get("heads", defaults.heads)),
            bool(data.get("standardize", defaults.standardize)),
            *(_triple(data, key) for key in ("mean", "std")),
        )
        if cfg.size < 2 or len(set(cfg.classes)) != cfg.size:
            raise ValueError(f"{COLOUR_KEY}.classes: expected at least 2 distinct colours, got {cfg.size}")
        if not cfg.weight > 0 or cfg.hidden <= 0 or cfg.heads < 1:
            raise ValueError(f"{COLOUR_KEY}: weight, hidden and heads must be > 0")
        if not cfg.bins or any(not 1 < b <= 16 for b in cfg.bins):
            raise ValueError(
                f"{COLOUR_KEY}.bins: expected per-channel bin counts in 2..16, got {list(cfg.bins)}"
            )
        if cfg.std is not None and not all(v > 0 for v in cfg.std):
            raise ValueError(f"{COLOUR_KEY}.std: expected positive values, got {list(cfg.std)}")
        return cfg

    @property
    def input_dim(self) -> int:
        """Length of the image head's input: per histogram, bins**3 counts, mean RGB and fraction."""
        return sum(b**3 + 4 for b in self.bins)

    def to_dict(self) -> dict[str, Any]:
        """The config entry (JSON-ready)."""
        return {
            "classes": list(self.classes),
            "weight": self.weight,
            "hidden": self.hidden,
            "bins": list(self.bins),
            "heads": self.heads,
            "standardize": self.standardize,
            **{k: list(v) for k, v in (("mean", self.mean), ("std", self.std)) if v is not None},
        }


def _triple(data: dict[str, Any], key: str) -> tuple[float, ...] | None:
    """``data[key]`` as three floats (one per RGB channel), or None when absent."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ValueError(f"{COLOUR_KEY}.{key}: expected three numbers (R, G, B), got {value!r}")
    return tuple(float(v) for v in value)


def join(member: torch.Tensor, channel: torch.Tensor, weight: float) -> torch.Tensor:
    """The member's vector (normalized) followed by the channel scaled by ``sqrt(weight)``."""
    return torch.cat([F.normalize(member.float(), dim=-1), math.sqrt(weight) * channel.float()], dim=-1).to(
        member.dtype
    )


class ImageColourHead(nn.Module):
    """Colour histograms of a photo -> colour logits; ``channel`` gives the unit-length probability
    vector of a normalized image batch.

    ``cfg.heads`` MLPs (fitted apart, from different seeds) each predict a distribution and the
    channel holds their mean; with ``cfg.standardize`` the input is first standardized with the
    training features' per-feature mean and spread (the ``shift`` and ``scale`` buffers, saved
    with the member). A head saved before either existed (one MLP under ``net.``) still loads.
    """

    def __init__(self, cfg: ColourChannelCfg):
        super().__init__()
        self.bins = cfg.bins
        self.size = cfg.size
        self.members = nn.ModuleList(
            nn.Sequential(nn.Linear(cfg.input_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.size))
            for _ in range(cfg.heads)
        )
        self.standardize = cfg.standardize
        if cfg.standardize:
            self.register_buffer("shift", torch.zeros(cfg.input_dim))
            self.register_buffer("scale", torch.ones(cfg.input_dim))
        self.register_load_state_dict_pre_hook(_single_mlp_keys)

    def inputs(
        self,
        images: torch.Tensor,
        mean: torch.Tensor,
        std: torch.Tensor,
        known: dict[int, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The head's input for normalized images (``mean``/``std`` undo the normalization);
        ``known[bins]`` are histograms already computed for these images, reused."""
        known = known or {}
        missing = [b for b in self.bins if b not in known]
        found = {**known, **(colour_histograms(images, mean, std, missing) if missing else {})}
        return torch.cat([found[b] for b in self.bins], dim=1)

    def standardized(self, inputs: torch.Tensor) -> torch.Tensor:
        """``inputs`` as every MLP reads them (standardized when the head standardizes)."""
        inputs = inputs.float()
        return (inputs - self.shift) / self.scale if self.standardize else inputs

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Colour log-probabilities (B, K) of the heads' mean distribution, from ``inputs``."""
        return self.probabilities(inputs).log()

    def probabilities(self, inputs: torch.Tensor) -> torch.Tensor:
        """The heads' mean predicted colour distribution (B, K)."""
        x = self.standardized(inputs)
        return torch.stack([mlp(x).softmax(dim=-1) for mlp in self.members]).mean(dim=0)

    def channel(self, inputs: torch.Tensor) -> torch.Tensor:
        """``p / ||p||`` with ``p`` the predicted colour distribution (``inputs`` from ``inputs``)."""
        return F.normalize(self.probabilities(inputs), dim=-1)


def _single_mlp_keys(module, state_dict, prefix, *_args) -> None:
    """Load a one-MLP head saved under ``net.`` (before heads were averaged) as ``members.0.``."""
    old = prefix + "net."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + "members.0." + key[len(old) :]] = state_dict.pop(key)


class TextColourHead(nn.Module):
    """Pooled text features -> logits of the colour a text names; ``channel`` centres them."""

    def __init__(self, width: int, cfg: ColourChannelCfg):
        super().__init__()
        self.linear = nn.Linear(width, cfg.size)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """Colour logits (B, K)."""
        return self.linear(pooled.float())

    def channel(self, pooled: torch.Tensor) -> torch.Tensor:
        """``q - 1/K``: zero for a text that names no colour (``q`` uniform)."""
        logits = self(pooled)
        return logits.softmax(dim=-1) - 1.0 / logits.shape[-1]


class ColourProjection(nn.Module):
    """A text tower's projection with the channel: ``join(proj(pooled), head.channel(pooled))``."""

    def __init__(self, proj: nn.Module, head: TextColourHead, weight: float):
        super().__init__()
        self.proj = proj
        self.colour = head
        self.weight = weight

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """The joined text vector (member part normalized)."""
        return join(self.proj(pooled), self.colour.channel(pooled), self.weight)


def colour_channel_cfg(model_cfg: dict[str, Any]) -> ColourChannelCfg | None:
    """The member's channel config, or None when it has none."""
    entry = model_cfg.get(COLOUR_KEY)
    return ColourChannelCfg.from_dict(entry) if entry else None


def channel_dims(model_cfg: dict[str, Any]) -> int:
    """Dimensions the colour channel adds to a member's vectors (0 without one)."""
    channel = colour_channel_cfg(model_cfg)
    return channel.size if channel else 0


def member_dim(model_cfg: dict[str, Any]) -> int:
    """Length of a member's vectors: its embedding plus the colour channel, if any."""
    return int(model_cfg["embed_dim"]) + channel_dims(model_cfg)


__all__ = [
    "COLOUR_KEY",
    "colour_features",
    "colour_histograms",
    "ColourChannelCfg",
    "ColourProjection",
    "ImageColourHead",
    "TextColourHead",
    "channel_dims",
    "colour_channel_cfg",
    "join",
    "member_dim",
]
