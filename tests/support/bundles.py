"""Small random-init bundles for tests that need real open_clip members but not learned weights."""

from __future__ import annotations

from pathlib import Path

import torch

from domain.bundle import Bundle, FusionSpec, MemberSpec, write_bundle
from domain.members import build_model, save_member
from domain.preprocess import input_size

TINY_VIT = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_CUSTOM_TEXT = {
    "embed_dim": 48,
    "custom_text": True,
    "vision_cfg": {"image_size": 40, "layers": 1, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 20, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
PREPROCESS = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "resize_mode": "squash"}


def make_random_bundle(directory: Path, configs: dict[str, dict] | None = None, seed: int = 0) -> Path:
    """Write a bundle of random-init members (default: m1 = CLIP, m2 = CustomTextCLIP)."""
    configs = configs or {"m1": TINY_VIT, "m2": TINY_CUSTOM_TEXT}
    specs = []
    for i, (name, cfg) in enumerate(configs.items()):
        torch.manual_seed(seed + i)
        model = build_model(cfg)
        save_member(model, cfg, PREPROCESS, directory / "members" / name)
        specs.append(
            MemberSpec(
                name=name,
                arch="tiny-test",
                dim=cfg["embed_dim"],
                image_size=cfg["vision_cfg"]["image_size"],
                path=f"members/{name}",
                weight=1.0 + i,
            )
        )
    bundle = Bundle(name="test-random", version="1", members=tuple(specs), fusion=FusionSpec("rrf", 60))
    write_bundle(bundle, directory)
    return directory


def write_pretrained_bundle(directory: Path, name: str, model: torch.nn.Module, cfg: dict) -> MemberSpec:
    """Write a one-member bundle of a pretrained (package-trunk) member as training would; returns its spec."""
    from domain.pretrained_vision import trunk_package
    from training.defaults import PRETRAINED_PREPROCESS

    save_member(model, cfg, dict(PRETRAINED_PREPROCESS), directory / "members" / name)
    spec = MemberSpec(
        name=name,
        arch=cfg["vision_cfg"]["timm_model_name"],
        dim=cfg["embed_dim"],
        image_size=max(input_size(cfg["vision_cfg"]["image_size"])),
        path=f"members/{name}",
        image_trunk=trunk_package(cfg),
    )
    write_bundle(Bundle(name="b", version="1", members=(spec,), fusion=FusionSpec("rrf", 60)), directory)
    return spec
