"""One forward of a frozen pretrained image trunk that several members share.

Members built on the same package trunk (``domain.pretrained_vision``) carry identical frozen trunk
weights and differ only in their heads. At load time the encoder groups such members (same trunk
reference, colour features and input geometry, weights compared tensor by tensor); a batch then runs
the trunk once and each member applies its own head. The vectors are those of each member's
``encode_image``; the work is one trunk forward instead of one per member.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from domain.pretrained_vision import PretrainedVisual, pretrained_visual


def same_image_trunk(a: PretrainedVisual, b: PretrainedVisual) -> bool:
    """Whether two towers compute the same head input (same trunk, colour features and weights)."""
    if (a.cfg.trunk, a.cfg.colour_bins, a.image_size) != (b.cfg.trunk, b.cfg.colour_bins, b.image_size):
        return False
    if (a.colour_head is None) != (b.colour_head is None):
        return False
    modules = [(a.trunk, b.trunk)] + ([(a.colour_head, b.colour_head)] if a.colour_head is not None else [])
    for one, two in modules:  # the colour channel is part of ``features`` (computed by the first tower)
        left, right = one.state_dict(), two.state_dict()
        if left.keys() != right.keys() or not all(torch.equal(left[k], right[k]) for k in left):
            return False
    return True


def shared_image_groups(
    models: Mapping[str, torch.nn.Module], geometry: Mapping[str, str | None]
) -> list[dict[str, PretrainedVisual]]:
    """``{member: tower}`` groups (two or more, in the given order) sharing a trunk and an input
    geometry (``geometry[member]`` is its preprocessing key; None never groups)."""
    groups: list[dict[str, PretrainedVisual]] = []
    for name, model in models.items():
        tower = pretrained_visual(model)
        if tower is None or geometry.get(name) is None:
            continue
        for group in groups:
            first = next(iter(group))
            if geometry[first] == geometry[name] and same_image_trunk(group[first], tower):
                group[name] = tower
                break
        else:
            groups.append({name: tower})
    return [group for group in groups if len(group) > 1]


def encode_images_shared(
    towers: Mapping[str, PretrainedVisual], images: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Unnormalized image features per member of one group: one trunk forward, per-member heads."""
    features = next(iter(towers.values())).features(images)
    return {member: tower.project(features) for member, tower in towers.items()}


__all__ = ["encode_images_shared", "same_image_trunk", "shared_image_groups"]
