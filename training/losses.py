"""Training losses: multi-positive symmetric InfoNCE, SupCon, batch-hard triplet, prompt-classifier CE.

``clip_loss`` treats every pair whose caption ids match as a positive (templated captions repeat
across items), so duplicates in a batch are not pushed apart. With all captions distinct it is the
usual CLIP loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

AUX_LOSSES = ("supcon", "triplet", "ce")


def _soft_ce(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    target = positives.float() / positives.float().sum(dim=1, keepdim=True)
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def clip_loss(
    image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, caption_ids: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE over L2-normalized features; pairs with equal caption ids are positives."""
    logits = logit_scale * image @ text.t()
    positives = caption_ids[:, None] == caption_ids[None, :]
    return 0.5 * (_soft_ce(logits, positives) + _soft_ce(logits.t(), positives.t()))


def supcon_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al.) on L2-normalized features; anchors without positives are skipped."""
    count = features.shape[0]
    logits = features @ features.t() / temperature
    self_mask = torch.eye(count, dtype=torch.bool, device=features.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    log_prob = F.log_softmax(logits, dim=1).masked_fill(self_mask, 0.0)
    has_positive = positives.any(dim=1)
    if not has_positive.any():
        return features.sum() * 0.0
    per_anchor = (log_prob * positives).sum(dim=1) / positives.sum(dim=1).clamp(min=1)
    return -per_anchor[has_positive].mean()


def triplet_loss(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Batch-hard triplet loss on cosine distance; anchors without a positive or a negative are skipped."""
    distance = 1.0 - features @ features.t()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=features.device)
    positive = same & ~eye
    valid = positive.any(dim=1) & (~same).any(dim=1)
    if not valid.any():
        return features.sum() * 0.0
    hardest_positive = distance.masked_fill(~positive, float("-inf")).max(dim=1).values
    hardest_negative = distance.masked_fill(same, float("inf")).min(dim=1).values
    return F.relu(hardest_positive - hardest_negative + margin)[valid].mean()


def prompt_ce_loss(
    image: torch.Tensor, class_text: torch.Tensor, logit_scale: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of images against the text features of every class prompt (a zero-shot head)."""
    return F.cross_entropy(logit_scale * image @ class_text.t(), labels)


def parse_loss(spec: str) -> tuple[str, ...]:
    """``"clip"``, ``"clip+supcon"``, ``"clip+triplet"``, ``"clip+ce"`` (aux terms may be combined)."""
    parts = tuple(p.strip() for p in spec.split("+") if p.strip())
    if not parts or parts[0] != "clip" or any(p not in AUX_LOSSES for p in parts[1:]):
        raise ValueError(
            f"unknown loss {spec!r}; valid: 'clip' optionally followed by '+' and any of {AUX_LOSSES}"
        )
    return parts[1:]
