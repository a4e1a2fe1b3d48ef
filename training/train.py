"""Train one ensemble member: AdamW + warm-up/cosine, grad clipping, AMP on CUDA, checkpoints and resume.

Every epoch writes a member folder (``<run_dir>/epoch-<n>``, the open_clip local-dir layout of
``domain.members.save_member``), the optimizer state (``state.pt``) and the validation
history (``history.json``: text->image macro mAP@10 by articleType). A rerun picks up after the last
finished epoch.

Under ``torchrun`` every rank trains its shard of each global batch (``training.distributed``): the
loss is computed over features gathered from every rank, and rank 0 alone validates and writes
checkpoints and the history; a resume reads them on rank 0 and hands them to the others.
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
from domain.pretrained_vision import TRUNK_PREFIX, package_keys, pretrained_visual
from training import distributed
from training.config import PRECISIONS, MemberConfig
from training.data.images import Pixels, geometry_for
from training.data.prepared import TrainingData
from training.epoch import EpochLoop
from training.queries import category_queries, quick_text_map
from training.retrieval import embed_features, embed_images, embed_texts
from training.samplers import PKBatches, RandomBatches
from training.text import TextSide, is_hf_tower

log = logging.getLogger("vitrine.training.train")
STATE_FILE = "state.pt"
HISTORY_FILE = "history.json"
LOSS_CURVE_FILE = "loss_curve.json"  # {epoch: [loss of each step]}
AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
TUNED_LR_SCALE = 0.1  # pretrained trunk stages that train move at a tenth of the head's rate


def select_device(requested: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision (None = fp32): ``auto`` is fp16 on CUDA, fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {list(PRECISIONS)}")
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    return AMP_DTYPES.get(precision)


class MemberForward(torch.nn.Module):
    """A member's training forward (what DistributedDataParallel wraps): normalized image and text
    features, the logit scale, and the class-prompt text features when a loss needs them."""

    def __init__(self, model: torch.nn.Module, text_side: TextSide, from_features: bool = False):
        super().__init__()
        self.model = model
        self.text_side = text_side
        self.from_features = from_features  # inputs are cached frozen-trunk features, not pixels

    def forward(
        self, images: torch.Tensor, caption_ids: torch.Tensor, class_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(image features, text features, logit scale, class-prompt features or None)."""
        encoded = self.model.visual.project(images) if self.from_features else self.model.encode_image(images)
        image = torch.nn.functional.normalize(encoded.float(), dim=-1)
        text = self.text_side.features(self.model, caption_ids).float()
        scale = self.model.logit_scale.exp()
        classes = None if class_ids is None else self.text_side.features(self.model, class_ids)
        return image, text, scale, classes


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
    """Parameter groups (decay / no decay, tuned trunk stages at ``TUNED_LR_SCALE`` x lr); a frozen
    text tower keeps only its projection trainable, a pretrained image trunk keeps its package part
    frozen (its head and any tuned stages train)."""
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
    from_package = set(package_keys(model))
    pretrained = pretrained_visual(model) is not None
    groups: dict[tuple[bool, bool], list] = {(t, d): [] for t in (False, True) for d in (True, False)}
    for name, param in model.named_parameters():
        frozen = lock_text and name.startswith(text_prefixes) and not name.startswith("text.proj")
        frozen = frozen or name in from_package
        param.requires_grad_(not frozen)
        if frozen:
            continue
        decay = not (param.ndim < 2 or "logit_scale" in name)
        groups[(pretrained and name.startswith(TRUNK_PREFIX), decay)].append(param)
    return [
        {
            "params": params,
            "weight_decay": cfg.weight_decay if decay else 0.0,
            "lr": cfg.lr * (TUNED_LR_SCALE if tuned else 1.0),
        }
        for (tuned, decay), params in groups.items()
        if params
    ]


def lr_lambda(warmup: int, total: int):
    """Linear warm-up then cosine decay to zero, as a LambdaLR factor."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _sampler(cfg: MemberConfig, data: TrainingData, train: np.ndarray):
    if cfg.sampler == "pk":
        labels, _ = data.labels(cfg.label)
        p = min(cfg.pk[0], len(set(labels[train].tolist())))
        return PKBatches(train, labels[train], p, cfg.pk[1], seed=cfg.seed, power=cfg.class_power)
    return RandomBatches(train, cfg.batch_size, seed=cfg.seed)


def validate(
    model: torch.nn.Module,
    tokenizer: Callable,
    data: TrainingData,
    pixels: Pixels,
    device: torch.device,
    features: np.ndarray | None = None,
) -> float:
    """Validation text->image macro mAP@10 by articleType (from cached trunk ``features`` when given)."""
    val = data.positions("val")
    if len(val) == 0:
        return 0.0
    queries, texts = category_queries([data.catalog.products[i] for i in val], "articleType", min_items=2)
    if not texts:
        return 0.0
    model.eval()
    if features is None:
        gallery = embed_images(model, pixels, val, device)
    else:
        gallery = embed_features(model, features, val, device)
    score = quick_text_map(embed_texts(model, tokenizer, texts, device), gallery, queries)
    model.train()
    return score


def _read_checkpoint(run_dir: Path) -> dict | None:
    state_file = run_dir / STATE_FILE
    if not state_file.exists():
        return None
    state = torch.load(state_file, map_location="cpu", weights_only=False)
    state["model"] = load_file(str(run_dir / f"epoch-{int(state['epoch'])}" / WEIGHTS_FILE))
    state["history"] = json.loads((run_dir / HISTORY_FILE).read_text())
    return state


def _resume(run_dir: Path, model, optimizer, scheduler, scaler) -> tuple[int, list[dict]]:
    """Load the last finished epoch (read on rank 0, handed to every rank); (epoch, history)."""
    state = distributed.broadcast_object(_read_checkpoint(run_dir) if distributed.is_main() else None)
    if state is None:
        return 0, []
    epoch = int(state["epoch"])
    model.load_state_dict(state["model"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    log.info("%s: resuming after epoch %d", run_dir.name, epoch)
    return epoch, state["history"]


def train_member(
    cfg: MemberConfig,
    data: TrainingData,
    run_dir: Path,
    device: torch.device | None = None,
    precision: str = "auto",
) -> MemberRun:
    """Train (or resume, or just reload when finished) one member and return it.

    Under torchrun every rank calls this with its own device; rank 0 writes ``run_dir``.
    """
    cfg.validate()
    device = device or select_device()
    main = distributed.is_main()
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    model, model_cfg = create_model(cfg)
    tokenizer = make_tokenizer(model_cfg)
    text_name = str(model_cfg.get("text_cfg", {}).get("hf_model_name", ""))
    with distributed.main_first():  # rank 0 fills the pixel and text-feature caches, the others read them
        pixels = data.pixels(geometry_for(model_cfg, cfg.preprocess))
        text_side = TextSide(model, tokenizer, data.captions, text_name, data.cache_dir)
    model.to(device).train()
    text_side.to(device)
    visual = pretrained_visual(model)
    if visual is None:  # a pretrained tower lays out its own trunk (domain.pretrained_vision)
        model.visual.to(memory_format=torch.channels_last)
    with distributed.main_first():  # a frozen pretrained trunk runs once per image, not per step
        features = None if visual is None else data.trunk_features(visual, pixels, device)
    train = data.positions("train")
    sampler = _sampler(cfg, data, train)
    distributed.check_divisible(sampler.batch_size, f"member {cfg.name}: batch (P x K or batch_size)")
    steps = cfg.steps_per_epoch or max(1, len(train) // sampler.batch_size)
    optimizer = torch.optim.AdamW(trainable_parameters(model, cfg), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.warmup_steps, steps * cfg.epochs))
    amp = autocast_dtype(precision, device)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and amp == torch.float16)
    done, history = _resume(run_dir, model, optimizer, scheduler, scaler)
    forward = distributed.wrap(MemberForward(model, text_side, features is not None), device)
    epochs = range(done + 1, cfg.epochs + 1)
    for epoch in tqdm(epochs, desc=cfg.name, initial=done, total=cfg.epochs, disable=not main):
        start = time.time()
        loop = EpochLoop(cfg, data, pixels, device, amp, features)
        loss = loop.run(model, forward, sampler, (optimizer, scheduler, scaler), epoch, steps)
        entry = _finish_epoch(
            cfg, model, model_cfg, tokenizer, data, (pixels, features), device, run_dir, epoch
        )
        entry = distributed.broadcast_object(
            {**entry, "loss": loss, "seconds": time.time() - start} if main else None
        )
        history.append({k: entry[k] for k in ("epoch", "loss", "val_text_map10", "seconds")})
        if main:
            _write_epoch(cfg, run_dir, history, (optimizer, scheduler, scaler), epoch, loop.step_losses)
    model.visual.to(memory_format=torch.contiguous_format)
    model.eval()
    return MemberRun(cfg.name, model, model_cfg, cfg.preprocess, run_dir, history)


def _finish_epoch(cfg, model, model_cfg, tokenizer, data, inputs, device, run_dir, epoch) -> dict:
    """On rank 0: save the epoch's member folder and validate it (other ranks skip both)."""
    if not distributed.is_main():
        return {}
    save_member(model, model_cfg, cfg.preprocess, run_dir / f"epoch-{epoch}")
    pixels, features = inputs
    return {"epoch": epoch, "val_text_map10": validate(model, tokenizer, data, pixels, device, features)}


def _write_epoch(cfg, run_dir: Path, history: list[dict], optim, epoch: int, step_losses: list[float]):
    """Rank 0's epoch log line, history, per-step losses and optimizer state (the resume point)."""
    optimizer, scheduler, scaler = optim
    last = history[-1]
    log.info(
        "%s epoch %d: loss %.4f, val text->image mAP@10 %.4f (%.0f s)",
        cfg.name,
        epoch,
        last["loss"],
        last["val_text_map10"],
        last["seconds"],
    )
    (run_dir / HISTORY_FILE).write_text(json.dumps(history, indent=2))
    curve_file = run_dir / LOSS_CURVE_FILE
    curve = json.loads(curve_file.read_text()) if curve_file.exists() else {}
    curve[str(epoch)] = step_losses
    curve_file.write_text(json.dumps({k: curve[k] for k in sorted(curve, key=int) if int(k) <= epoch}))
    state = {
        "epoch": epoch,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
    }
    torch.save(state, run_dir / STATE_FILE)


def read_loss_curve(run_dir: Path) -> list[float]:
    """Every step's training loss of a member run, in order (from ``loss_curve.json``)."""
    curve = json.loads((run_dir / LOSS_CURVE_FILE).read_text())
    return [loss for epoch in sorted(curve, key=int) for loss in curve[epoch]]


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
