"""The colour channel (``domain.colour_channel``) joined to a member's towers.

A pretrained tower (``domain.pretrained_vision.PretrainedVisual``) computes the channel beside its
own colour features and shares it with the members cut from the same trunk. Any other image tower
(a from-scratch timm convnet, such as the default's m1) is wrapped in ``ColourVisual``, which
counts the same histograms on the member's own pixels; the channel config then carries the
member's pixel normalization (``mean``/``std``), which the histograms undo. The text side is the
same for both: ``ColourProjection`` around the Hugging Face tower's projection.
"""

from __future__ import annotations

import torch
from torch import nn

from domain.colour_channel import (
    COLOUR_KEY,
    ColourChannelCfg,
    ColourProjection,
    ImageColourHead,
    TextColourHead,
    join,
)
from domain.pretrained_vision import VISION_KEY, pretrained_visual


class ColourVisual(nn.Module):
    """An image tower with the colour channel joined: ``join(tower(x), head.channel(x))``.

    ``channel.mean``/``channel.std`` are the member's pixel normalization (the histograms count
    the pixels as they were before it).
    """

    def __init__(self, tower: nn.Module, channel: ColourChannelCfg):
        super().__init__()
        if channel.mean is None or channel.std is None:
            raise ValueError(
                f"{COLOUR_KEY}: a tower without {VISION_KEY} needs 'mean' and 'std' "
                "(the member's pixel normalization)"
            )
        self.tower = tower
        self.colour_head = ImageColourHead(channel)
        self.colour_weight = channel.weight
        for name, value in (("mean", channel.mean), ("std", channel.std)):
            self.register_buffer(
                name, torch.tensor(value, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
            )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The tower's embedding (normalized) followed by the colour channel."""
        inputs = self.colour_head.inputs(images, self.mean, self.std)
        return join(self.tower(images), self.colour_head.channel(inputs), self.colour_weight)


def add_colour_channel(model: nn.Module, channel: ColourChannelCfg) -> nn.Module:
    """Give a member with a Hugging Face text tower the colour channel: untrained heads, which the
    member's weights file (or ``training.colour_channel``) then fills. A pretrained image tower
    carries it itself; any other is wrapped in ``ColourVisual`` (``channel`` must then name the
    member's ``mean``/``std``)."""
    text = getattr(model, "text", None)
    if not hasattr(text, "proj") or not hasattr(text, "config"):
        raise ValueError(f"{COLOUR_KEY} needs a Hugging Face text tower")
    tower = pretrained_visual(model)
    if tower is not None:
        tower.add_colour_channel(ImageColourHead(channel), channel.weight)
    else:
        model.visual = ColourVisual(model.visual, channel)
    text.proj = ColourProjection(text.proj, TextColourHead(text.config.hidden_size, channel), channel.weight)
    return model


def image_colour_head(model: nn.Module) -> ImageColourHead | None:
    """The member's image colour head (None when it has no channel)."""
    tower = pretrained_visual(model)
    visual = tower if tower is not None else getattr(model, "visual", None)
    return getattr(visual, "colour_head", None)


__all__ = ["ColourVisual", "add_colour_channel", "image_colour_head"]
