"""One epoch of a member's training: sampled batches, augmentation or cached features, the losses.

Every rank draws the same global batch, captions and augmentation and keeps its own rows; the
contrastive features are gathered across ranks with gradients (:mod:`training.distributed`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm import tqdm

from training import distributed
from training.config import MemberConfig
from training.data.images import Pixels, augment
from training.data.prepared import TrainingData
from training.losses import clip_loss, parse_loss, prompt_ce_loss, supcon_loss, triplet_loss
from training.samplers import PKBatches, RandomBatches

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP caps its temperature at 100


def aux_loss(
    kind: str,
    image: torch.Tensor,
    class_text: torch.Tensor | None,
    labels: torch.Tensor,
    logit_scale: torch.Tensor,
) -> torch.Tensor:
    """One auxiliary loss on the image features: SupCon, triplet, or CE over class prompts."""
    if kind == "supcon":
        return supcon_loss(image, labels)
    if kind == "triplet":
        return triplet_loss(image, labels)
    assert class_text is not None, "the ce loss needs class-prompt features"
    return prompt_ce_loss(image, class_text, logit_scale, labels)


class EpochLoop:
    """One epoch of a member's training steps on this rank's shard of each global batch."""

    def __init__(
        self,
        cfg: MemberConfig,
        data: TrainingData,
        pixels: Pixels,
        device: torch.device,
        amp: torch.dtype | None,
        features: np.ndarray | None = None,
    ):
        self.cfg, self.data, self.pixels, self.device, self.amp = cfg, data, pixels, device, amp
        self.features = features
        self.aux = parse_loss(cfg.loss)
        self.labels_all, classes = data.labels(cfg.label)
        self.class_ids = torch.tensor([data.captions.class_prompt.get(c, 0) for c in classes], device=device)
        self.step_losses: list[float] = []

    def run(self, model, forward, sampler: PKBatches | RandomBatches, optim, epoch: int, steps: int) -> float:
        """``steps`` batches; returns the mean loss (of the global batch, the same on every rank)."""
        optimizer, scheduler, scaler = optim
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, epoch, 1])
        generator = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        rows = distributed.shard_rows(sampler.batch_size)
        order = torch.from_numpy(distributed.gathered_order(sampler.batch_size))
        bar = tqdm(
            sampler.epoch(epoch, steps),
            total=steps,
            desc=f"{cfg.name} epoch {epoch}",
            leave=False,
            mininterval=5,
            disable=not distributed.is_main(),
        )
        for positions in bar:
            # Every rank draws the same global batch, captions and augmentation; each keeps its rows.
            images = self._inputs(positions, generator, rows).to(self.device, non_blocking=True)
            caption_ids = torch.from_numpy(self.data.captions.sample(positions, rng))
            labels = torch.from_numpy(self.labels_all[positions])
            loss = self._loss(forward, images, caption_ids, labels, rows, order)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(
                [p for g in optimizer.param_groups for p in g["params"]], cfg.grad_clip
            )
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
            self.step_losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(self.step_losses[-20:]):.3f}", refresh=False)
        return float(np.mean(self.step_losses))

    def _inputs(self, positions: np.ndarray, generator: torch.Generator, rows: np.ndarray) -> torch.Tensor:
        """This rank's rows of the batch: cached trunk features, or augmented pixels."""
        if self.features is not None:
            return torch.from_numpy(np.asarray(self.features[np.asarray(positions)[rows]], np.float32))
        cfg = self.cfg
        batch = augment(self.pixels, positions, generator, cfg.augment_shift, cfg.augment_jitter, rows=rows)
        # the layout of the tower's weights (training.train): convs on CPU run faster in it
        return batch.contiguous(memory_format=torch.channels_last)

    def _loss(self, forward, images, caption_ids, labels, rows, order) -> torch.Tensor:
        """The global batch's loss: this rank's features joined with every other rank's (with gradients)."""
        device = self.device
        class_ids = self.class_ids if "ce" in self.aux else None
        with torch.autocast(device.type, dtype=self.amp, enabled=self.amp is not None):
            image, text, scale, class_text = forward(images, caption_ids[rows].to(device), class_ids)
            image, text = distributed.gather_with_grad(image), distributed.gather_with_grad(text)
            caption_ids, labels = caption_ids[order].to(device), labels[order].to(device)
            loss = clip_loss(image, text, scale, caption_ids)
            for kind in self.aux:
                loss = loss + self.cfg.aux_weight * aux_loss(kind, image, class_text, labels, scale)
        return loss


__all__ = ["EpochLoop", "aux_loss"]
