"""One forward of a frozen pretrained image trunk that several members share.

Members built on the same package trunk (``domain.pretrained_vision``) carry identical frozen
stages and differ only in their tuned stages and heads. At load time the encoder groups such
members (same trunk reference, tuned stages, colour features and input geometry, frozen weights
compared tensor by tensor); a batch then runs the frozen stages once (on ONNX Runtime when the
tower has a frozen-part session) and each member applies its own tuned stages and head. The
vectors are those of each member's ``encode_image``; the work is one frozen-trunk forward instead
of one whole-trunk forward per member.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from domain.pretrained_vision import PretrainedVisual, pretrained_visual


def same_image_trunk(a: PretrainedVisual, b: PretrainedVisual) -> bool:
    """Whether two towers compute the same ``features`` (the head's input): the same package trunk,
    input size and tuned stages, equal frozen weights and colour features.

    Tuned stages may differ: ``project`` runs each tower's own (members fine-tuned from one trunk,
    with different seeds or losses, still share its frozen stages).
    """
    if a.frozen_key != b.frozen_key or a.cfg.colour_bins != b.cfg.colour_bins:
        return False
    if (a.colour_head is None) != (b.colour_head is None):
        return False
    frozen = set(a.package_keys(prefix=""))
    left, right = a.trunk.state_dict(), b.trunk.state_dict()
    if left.keys() != right.keys() or not all(torch.equal(left[k], right[k]) for k in frozen):
        return False
    if a.colour_head is None:  # the colour channel is part of ``features`` (computed by the first tower)
        return True
    left, right = a.colour_head.state_dict(), b.colour_head.state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


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
