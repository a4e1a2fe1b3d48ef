"""Train one ensemble member: AdamW + warm-up/cosine, grad clipping, AMP on CUDA, checkpoints and resume.

Every epoch writes a member folder (``<run_dir>/epoch-<n>``, the open_clip local-dir layout of
``domain.members.save_member``), the optimizer state (``state.pt``) and the validation
history (``history.json``: text->image macro mAP@10 by articleType). A rerun picks up after the last
finished epoch.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
from safetensors.torch import load_file
from tqdm import tqdm

from domain.members import WEIGHTS_FILE, build_model, make_tokenizer, save_member
from training.config import MemberConfig
from training.data.images import Pixels, augment, geometry_for
from training.data.prepared import Prepared
from training.losses import clip_loss, parse_loss, prompt_ce_loss, supcon_loss, triplet_loss
from training.queries import category_queries, quick_text_map
from training.retrieval import embed_images, embed_texts
from training.samplers import PKBatches, RandomBatches
from training.text import TextSide, is_hf_tower

log = logging.getLogger("vitrine.training.train")
STATE_FILE = "state.pt"
HISTORY_FILE = "history.json"
MAX_LOGIT_SCALE = math.log(100.0)


def select_device(requested: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


@dataclass
class MemberRun:
    """A trained member: the model, its configs, where its epochs live and its history."""

    name: str
    model: torch.nn.Module
    model_cfg: dict
    preprocess_cfg: dict
    run_dir: Path
    history: list[dict]

    def epoch_dir(self, epoch: int | None = None) -> Path:
        """Folder of an epoch's member checkpoint (default: the last)."""
        return self.run_dir / f"epoch-{epoch or self.history[-1]['epoch']}"


def create_model(cfg: MemberConfig) -> tuple[torch.nn.Module, dict]:
    """The member's model (from a hub tag when ``pretrained`` is set, else freshly initialised) and config."""
    model_cfg = cfg.model_config()
    if cfg.pretrained:
        model, _, _ = open_clip.create_model_and_transforms(cfg.arch, pretrained=cfg.pretrained)
        return model, model_cfg
    torch.manual_seed(cfg.seed)
    return build_model(model_cfg, hf_pretrained=True), model_cfg


def trainable_parameters(model: torch.nn.Module, cfg: MemberConfig) -> list[dict]:
    """Parameter groups (decay / no decay); a frozen text tower keeps only its projection trainable."""
    hf = is_hf_tower(model)
    text_prefixes = (
        "text.",
        "transformer.",
        "token_embedding",
        "positional_embedding",
        "ln_final",
        "text_projection",
    )
    lock_text = hf or (cfg.lock_text and bool(cfg.pretrained))
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        frozen = lock_text and name.startswith(text_prefixes) and not name.startswith("text.proj")
        param.requires_grad_(not frozen)
        if frozen:
            continue
        (no_decay if param.ndim < 2 or "logit_scale" in name else decay).append(param)
    return [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(warmup: int, total: int):
    """Linear warm-up then cosine decay to zero, as a LambdaLR factor."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _sampler(cfg: MemberConfig, data: Prepared, train: np.ndarray):
    if cfg.sampler == "pk":
        labels, _ = data.labels(cfg.label)
        p = min(cfg.pk[0], len(set(labels[train].tolist())))
        return PKBatches(train, labels[train], p, cfg.pk[1], seed=cfg.seed, power=cfg.class_power)
    return RandomBatches(train, cfg.batch_size, seed=cfg.seed)


def _aux_loss(
    kind: str,
    image: torch.Tensor,
    text_side: TextSide,
    model: torch.nn.Module,
    labels: torch.Tensor,
    class_ids: torch.Tensor,
    logit_scale: torch.Tensor,
) -> torch.Tensor:
    if kind == "supcon":
        return supcon_loss(image, labels)
    if kind == "triplet":
        return triplet_loss(image, labels)
    return prompt_ce_loss(image, text_side.features(model, class_ids), logit_scale, labels)


def validate(
    model: torch.nn.Module, tokenizer: Callable, data: Prepared, pixels: Pixels, device: torch.device
) -> float:
    """Validation text->image macro mAP@10 by articleType."""
    val = data.positions("val")
    if len(val) == 0:
        return 0.0
    queries, texts = category_queries([data.catalog.products[i] for i in val], "articleType", min_items=2)
    if not texts:
        return 0.0
    model.eval()
    score = quick_text_map(
        embed_texts(model, tokenizer, texts, device), embed_images(model, pixels, val, device), queries
    )
    model.train()
    return score


def _resume(run_dir: Path, model, optimizer, scheduler, scaler) -> tuple[int, list[dict]]:
    state_file = run_dir / STATE_FILE
    if not state_file.exists():
        return 0, []
    state = torch.load(state_file, map_location="cpu", weights_only=False)
    epoch = int(state["epoch"])
    model.load_state_dict(load_file(str(run_dir / f"epoch-{epoch}" / WEIGHTS_FILE)), strict=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    log.info("%s: resuming after epoch %d", run_dir.name, epoch)
    return epoch, json.loads((run_dir / HISTORY_FILE).read_text())


def train_member(
    cfg: MemberConfig, data: Prepared, run_dir: Path, device: torch.device | None = None
) -> MemberRun:
    """Train (or resume, or just reload when finished) one member and return it."""
    cfg.validate()
    device = device or select_device()
    run_dir.mkdir(parents=True, exist_ok=True)
    model, model_cfg = create_model(cfg)
    tokenizer = make_tokenizer(model_cfg)
    pixels = data.pixels(geometry_for(model_cfg, cfg.preprocess))
    text_name = str(model_cfg.get("text_cfg", {}).get("hf_model_name", ""))
    text_side = TextSide(model, tokenizer, data.captions, text_name, data.cache_dir)
    model.to(device).train()
    text_side.to(device)
    train = data.positions("train")
    sampler = _sampler(cfg, data, train)
    steps = cfg.steps_per_epoch or max(1, len(train) // sampler.batch_size)
    optimizer = torch.optim.AdamW(trainable_parameters(model, cfg), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.warmup_steps, steps * cfg.epochs))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    done, history = _resume(run_dir, model, optimizer, scheduler, scaler)
    for epoch in tqdm(range(done + 1, cfg.epochs + 1), desc=cfg.name, initial=done, total=cfg.epochs):
        start = time.time()
        loss = _train_epoch(
            cfg, data, model, text_side, sampler, (optimizer, scheduler, scaler), epoch, steps, pixels, device
        )
        save_member(model, model_cfg, cfg.preprocess, run_dir / f"epoch-{epoch}")
        score = validate(model, tokenizer, data, pixels, device)
        history.append(
            {"epoch": epoch, "loss": loss, "val_text_map10": score, "seconds": time.time() - start}
        )
        log.info(
            "%s epoch %d: loss %.4f, val text->image mAP@10 %.4f (%.0f s)",
            cfg.name,
            epoch,
            loss,
            score,
            history[-1]["seconds"],
        )
        (run_dir / HISTORY_FILE).write_text(json.dumps(history, indent=2))
        state = {
            "epoch": epoch,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
        }
        torch.save(state, run_dir / STATE_FILE)
    model.eval()
    return MemberRun(cfg.name, model, model_cfg, cfg.preprocess, run_dir, history)


def snapshot_member(cfg: MemberConfig, base_cfg: MemberConfig, base: MemberRun) -> MemberRun:
    """Member ``cfg`` as the trained run ``base`` was after epoch ``cfg.snapshot_epoch`` (ENCLIP)."""
    weights = base.run_dir / f"epoch-{cfg.snapshot_epoch}" / WEIGHTS_FILE
    if not weights.exists():
        raise FileNotFoundError(f"member {cfg.name}: no checkpoint {weights} (snapshot of {base.name})")
    model, model_cfg = create_model(base_cfg)
    model.load_state_dict(load_file(str(weights)), strict=False)
    model.to(next(base.model.parameters()).device).eval()
    history = [h for h in base.history if h["epoch"] <= cfg.snapshot_epoch]
    return MemberRun(cfg.name, model, model_cfg, base.preprocess_cfg, base.run_dir, history)


def _train_epoch(
    cfg: MemberConfig,
    data: Prepared,
    model: torch.nn.Module,
    text_side: TextSide,
    sampler: PKBatches | RandomBatches,
    optim: tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, torch.amp.GradScaler],
    epoch: int,
    steps: int,
    pixels: Pixels,
    device: torch.device,
) -> float:
    """One epoch of ``steps`` batches; returns the mean loss."""
    optimizer, scheduler, scaler = optim
    aux = parse_loss(cfg.loss)
    labels_all, classes = data.labels(cfg.label)
    class_ids = torch.tensor([data.captions.class_prompt.get(c, 0) for c in classes], device=device)
    rng = np.random.default_rng([cfg.seed, epoch, 1])
    generator = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    losses = []
    bar = tqdm(
        sampler.epoch(epoch, steps), total=steps, desc=f"{cfg.name} epoch {epoch}", leave=False, mininterval=5
    )
    for positions in bar:
        images = augment(pixels, positions, generator, cfg.augment_shift, cfg.augment_jitter).to(
            device, non_blocking=True
        )
        caption_ids = torch.from_numpy(data.captions.sample(positions, rng)).to(device)
        labels = torch.from_numpy(labels_all[positions]).to(device)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            image = torch.nn.functional.normalize(model.encode_image(images).float(), dim=-1)
            text = text_side.features(model, caption_ids).float()
            scale = model.logit_scale.exp()
            loss = clip_loss(image, text, scale, caption_ids)
            for kind in aux:
                loss = loss + cfg.aux_weight * _aux_loss(
                    kind, image, text_side, model, labels, class_ids, scale
                )
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
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", refresh=False)
    return float(np.mean(losses))
