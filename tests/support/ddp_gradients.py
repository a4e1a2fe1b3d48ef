"""Gradients of the contrastive losses under torchrun, for tests/training/test_distributed.py.

    python -m torch.distributed.run --standalone --nproc_per_node 2 -m tests.support.ddp_gradients OUT

Every rank builds the same tiny two-tower model and global batch, keeps its shard, gathers the
features with gradients and backpropagates the global loss under DistributedDataParallel; rank 0
writes the loss and the averaged gradients to OUT (``single_process_step`` computes the same in
one process, for comparison).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from training import distributed
from training.losses import clip_loss, supcon_loss

BATCH, WIDTH, DIM = 12, 6, 4


class TwoTowers(torch.nn.Module):
    """Linear image and text towers plus a learned logit scale."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.image = torch.nn.Linear(WIDTH, DIM)
        self.text = torch.nn.Linear(WIDTH, DIM)
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, images: torch.Tensor, texts: torch.Tensor):
        """Normalized features and the scale."""
        normalize = torch.nn.functional.normalize
        return (
            normalize(self.image(images), dim=-1),
            normalize(self.text(texts), dim=-1),
            self.logit_scale.exp(),
        )


def global_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images, texts, caption ids with repeats, class labels), the same on every rank."""
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(BATCH, WIDTH, generator=generator)
    texts = torch.randn(BATCH, WIDTH, generator=generator)
    captions = torch.arange(BATCH) // 2  # pairs share a caption: multi-positive InfoNCE
    labels = torch.arange(BATCH) % 3
    return images, texts, captions, labels


def loss_of(image, text, scale, captions, labels) -> torch.Tensor:
    """The training objective's shape: CLIP loss plus a SupCon term."""
    return clip_loss(image, text, scale, captions) + supcon_loss(image, labels)


def single_process_step() -> tuple[float, dict[str, torch.Tensor]]:
    """(loss, gradients) of one step over the whole batch in one process."""
    model = TwoTowers()
    images, texts, captions, labels = global_batch()
    loss = loss_of(*model(images, texts), captions, labels)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters()}


def distributed_step() -> tuple[float, dict[str, torch.Tensor]]:
    """(loss, gradients) of the same step with the batch sharded across the torchrun ranks."""
    device = distributed.init("cpu")
    model = TwoTowers()
    wrapped = distributed.wrap(model, device)
    images, texts, captions, labels = global_batch()
    rows = torch.from_numpy(distributed.shard_rows(BATCH))
    order = torch.from_numpy(distributed.gathered_order(BATCH))
    image, text, scale = wrapped(images[rows], texts[rows])
    image, text = distributed.gather_with_grad(image), distributed.gather_with_grad(text)
    loss = loss_of(image, text, scale, captions[order], labels[order])
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters()}


def main(argv: list[str]) -> int:
    """Run the distributed step; rank 0 saves {"loss", "grads", "world"} to argv[0]."""
    loss, grads = distributed_step()
    if distributed.is_main():
        torch.save({"loss": loss, "grads": grads, "world": distributed.world()}, Path(argv[0]))
    distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
