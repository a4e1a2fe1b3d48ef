"""One forward of a text trunk that several members share (a frozen pretrained tower, LiT-style).

Members trained on top of the same frozen Hugging Face text tower carry identical transformer
weights and differ only in pooling and projection. At load time the encoder groups such members
(weights compared tensor by tensor, same pad token); for a batch whose token ids are the same
under every member of a group, the transformer runs once and each member applies its own pooler
and projection to that output. The vectors are those of each member's ``encode_text``; the work is
one trunk forward instead of one per member.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from open_clip.hf_model import HFTextEncoder

TrunkRuntime = Callable[[torch.Tensor, torch.Tensor], Any]
"""(token ids, attention mask) -> the transformer's output (with ``last_hidden_state``)."""


def hf_text_tower(model: torch.nn.Module) -> HFTextEncoder | None:
    """The model's Hugging Face text tower when it returns pooled features only, else None."""
    text = getattr(model, "text", None)
    if isinstance(text, HFTextEncoder) and not text.output_tokens:
        return text
    return None


def same_trunk(a: HFTextEncoder, b: HFTextEncoder) -> bool:
    """Whether two towers' transformers compute the same function (same pad token and weights)."""
    if a.config.pad_token_id != b.config.pad_token_id or type(a.transformer) is not type(b.transformer):
        return False
    left, right = a.transformer.state_dict(), b.transformer.state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def shared_trunk_groups(models: Mapping[str, torch.nn.Module]) -> list[dict[str, HFTextEncoder]]:
    """``{member: tower}`` groups (two or more, in the given order) whose text transformers are identical."""
    groups: list[dict[str, HFTextEncoder]] = []
    for name, model in models.items():
        tower = hf_text_tower(model)
        if tower is None:
            continue
        for group in groups:
            if same_trunk(next(iter(group.values())), tower):
                group[name] = tower
                break
        else:
            groups.append({name: tower})
    return [group for group in groups if len(group) > 1]


def encode_shared(
    towers: Mapping[str, HFTextEncoder], tokens: torch.Tensor, runtime: TrunkRuntime | None = None
) -> dict[str, torch.Tensor]:
    """Unnormalized text features per member of one group: one trunk forward, per-member heads.

    ``runtime`` computes the transformer instead of torch (the group's ONNX session on CPU).
    """
    first = next(iter(towers.values()))
    attention = (tokens != first.config.pad_token_id).long()
    if runtime is not None and tokens.device.type == "cpu":
        out = runtime(tokens, attention)
    else:
        out = first.transformer(input_ids=tokens, attention_mask=attention)
    return {member: tower.proj(tower.pooler(out, attention)) for member, tower in towers.items()}


__all__ = ["TrunkRuntime", "encode_shared", "hf_text_tower", "same_trunk", "shared_trunk_groups"]
