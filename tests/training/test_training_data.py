"""Loaders, split, prompts and the pixel cache on small generated fixtures."""

from __future__ import annotations

import random
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from domain.catalog import STYLE_COLUMNS, CatalogError, Product, load_fashion, load_inshop
from training.data.images import augment, geometry_for
from training.data.prepared import prepare
from training.data.prompts import captions, category_query, spoken
from training.data.split import make_split, read_split
from training.data.synthetic import KINDS, draw_item, write_synthetic_catalog
from training.defaults import TINY_TEXT, TINY_VISION
from training.queries import colour_type_queries, shopper_queries

TINY_MODEL = {"embed_dim": 32, "vision_cfg": TINY_VISION, "text_cfg": TINY_TEXT}
PREPROCESS = {"mean": [0.5] * 3, "std": [0.5] * 3, "resize_mode": "squash"}


def style(product_id: str, article: str, **columns: str) -> Product:
    """A men's topwear product of the given articleType (other columns as given)."""
    attributes = {"gender": "Men", "masterCategory": "Apparel", "subCategory": "Topwear"}
    return Product(product_id, attributes={**attributes, "articleType": article, **columns})


@pytest.fixture
def fashion(tmp_path: Path) -> Path:
    """A 60-item synthetic catalog plus a bad row, a malformed line, a missing image and a corrupt image."""
    root = write_synthetic_catalog(tmp_path / "fashion", 60, seed=3)
    with (root / "styles.csv").open("a") as fh:
        fh.write("900,Men,Apparel,,Tshirts,Red,Summer,2012,Casual,No subcategory\n")  # missing field
        fh.write("901,Men,Apparel,Topwear\n")  # malformed: too few cells
        fh.write("902,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,No image file\n")
        fh.write("903,Women,Apparel,Dress,Dresses,Blue,Summer,2012,Casual,Corrupt image\n")
    (root / "images" / "903.jpg").write_bytes(b"not a jpeg at all")
    shutil.copy(root / "images" / "1.jpg", root / "images" / "904.jpg")  # byte-identical duplicate of id 1
    with (root / "styles.csv").open("a") as fh:
        fh.write("904,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,Duplicate photo\n")
    return root


def test_fashion_loader_skips_bad_rows_with_counts(fashion: Path):
    catalog = load_fashion(fashion)
    assert catalog.report.skipped == {"missing field": 1, "malformed line": 1, "no image file": 1}
    assert len(catalog) == 62  # 60 + corrupt (readable only when decoded) + duplicate
    assert catalog.products[0].row().keys() == set(STYLE_COLUMNS)


def test_prepare_drops_unreadable_images_and_keeps_duplicates_together(fashion: Path, tmp_path: Path):
    transform = geometry_for(TINY_MODEL, PREPROCESS)
    data = prepare(fashion, transform, tmp_path / "cache", split_seed=5, fractions=(0.5, 0.25, 0.25))
    assert data.catalog.report.skipped["unreadable image"] == 1
    assert "903" not in {p.id for p in data.catalog.products}
    sides = {pid: side for side in ("train", "val", "test") for pid in data.split.ids(side)}
    assert sides["1"] == sides["904"]
    assert sorted(sides) == sorted(p.id for p in data.catalog.products)
    pixels = data.pixels(transform)
    assert pixels.array.shape == (61, 32, 32, 3) and pixels.ok.all()
    assert list((tmp_path / "cache").glob("pixels-*.npy")), "decoded pixels are cached on disk"


def test_split_is_deterministic_and_round_trips(fashion: Path, tmp_path: Path):
    catalog = load_fashion(fashion)
    first, second = make_split(catalog, seed=1), make_split(catalog, seed=1)
    assert first == second
    assert make_split(catalog, seed=2) != first
    assert read_split(first.write(tmp_path / "split.json")) == first
    with pytest.raises(ValueError, match="fractions"):
        make_split(catalog, fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="valid"):
        first.ids("holdout")


def test_missing_styles_csv_is_a_clear_error(tmp_path: Path):
    with pytest.raises(CatalogError, match="styles.csv"):
        load_fashion(tmp_path)


def test_prompts_skip_templates_with_empty_fields(fashion: Path):
    product = load_fashion(fashion).products[0]
    texts = captions(product)
    assert f"a photo of {spoken(product.value('articleType'))}" in texts
    assert texts[-1] == product.text
    empty_colour = replace(product, attributes={**product.attributes, "baseColour": ""})
    assert not any("{" in t or "  " in t for t in captions(empty_colour))
    assert all(product.value("baseColour") not in t for t in captions(empty_colour, with_name=False))


def test_captions_and_queries_speak_as_shoppers_write():
    product = style("1", "Tshirts", baseColour="White")
    texts = captions(product, with_name=False)
    assert "a photo of T-shirts" in texts and not any("Tshirts" in t for t in texts)
    assert any("Top wear" in t for t in texts)
    assert category_query("Tshirts") == "a photo of T-shirts"
    assert category_query("Dresses") == "a photo of Dresses"


def test_synthetic_images_and_errors():
    image = draw_item("dress", "Red", random.Random(0))
    assert image.size == (60, 80)
    red = np.asarray(image)[35:45, 25:35].reshape(-1, 3).mean(axis=0)
    assert red[0] > 150 and red[1] < 90, "the dress is drawn in its colour"
    with pytest.raises(ValueError, match="valid"):
        draw_item("hat", "Red", random.Random(0))
    assert set(KINDS) >= {"tshirt", "dress", "shoe", "watch", "bag"}


def test_augment_keeps_shape_and_range(fashion: Path):
    data = prepare(fashion, geometry_for(TINY_MODEL, PREPROCESS), None)
    pixels = data.pixels(geometry_for(TINY_MODEL, PREPROCESS))
    batch = augment(pixels, np.arange(8), torch.Generator().manual_seed(0))
    assert batch.shape == (8, 3, 32, 32)
    assert batch.min() >= -1.0 - 1e-6 and batch.max() <= 1.0 + 1e-6


def test_augment_shifts_and_flips_each_photo_by_its_own_draw(fashion: Path):
    """Without jitter each image is its photo, flipped or not, cut from the replicate-padded photo
    at the offsets the generator drew for it (the same draws, replayed here)."""
    data = prepare(fashion, geometry_for(TINY_MODEL, PREPROCESS), None)
    pixels = data.pixels(geometry_for(TINY_MODEL, PREPROCESS))
    positions, shift = np.arange(3, 15), 3
    batch = augment(pixels, positions, torch.Generator().manual_seed(5), shift, 0.0)
    replay = torch.Generator().manual_seed(5)
    flips = torch.rand(len(positions), generator=replay) < 0.5
    offsets = torch.randint(0, 2 * shift + 1, (len(positions), 2), generator=replay)
    photos = torch.from_numpy(pixels.array[positions]).permute(0, 3, 1, 2).float() / 255.0
    padded = torch.nn.functional.pad(photos, (shift,) * 4, mode="replicate")
    _, _, height, width = photos.shape
    assert flips.any() and not flips.all() and len({tuple(o) for o in offsets.tolist()}) > 1
    for i, (dy, dx) in enumerate(offsets.tolist()):
        source = padded[i].flip(-1) if flips[i] else padded[i]
        expected = (
            source[:, dy : dy + height, dx : dx + width] - pixels.transform.mean[0]
        ) / pixels.transform.std[0]
        assert torch.allclose(batch[i], expected, atol=1e-6), f"image {i}"


def test_inshop_loader(tmp_path: Path):
    root = tmp_path / "inshop"
    rows = [
        ("img/WOMEN/Dresses/id_00000001/01_1_front.jpg", "id_00000001", "train"),
        ("img/WOMEN/Dresses/id_00000002/01_1_front.jpg", "id_00000002", "query"),
        ("img/WOMEN/Dresses/id_00000002/01_2_side.jpg", "id_00000002", "gallery"),
        ("img/MEN/Denim/id_00000003/01_1_front.jpg", "id_00000003", "gallery"),
        ("img/MEN/Denim/id_00000004/01_1_front.jpg", "id_00000004", "gallery"),  # image missing
    ]
    for path, _, _ in rows[:4]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        draw_item("dress", "Blue", random.Random(1)).save(root / path)
    lines = [str(len(rows)), "image_name item_id evaluation_status"]
    lines += [" ".join(r) for r in rows] + ["broken line"]
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    parts = load_inshop(root)
    assert [len(parts[s]) for s in ("train", "query", "gallery")] == [1, 1, 2]
    assert parts["query"].products[0].item_id == "id_00000002"
    assert parts["gallery"].products[1].value("articleType") == "Denim"
    assert parts["gallery"].products[1].value("gender") == "Men"
    assert parts["train"].report.skipped == {"no image file": 1, "malformed line": 1}


def test_colour_type_queries_need_both_to_match_and_speak_like_shoppers():
    rows = (
        [("Red", "Dresses")] * 3
        + [("Red", "Tshirts")] * 2
        + [("Blue", "Dresses")]
        + [("Multi", "Tshirts")] * 2
    )
    gallery = [style(str(i), t, baseColour=c) for i, (c, t) in enumerate(rows)] + [style("x", "Dresses")]
    query_set, texts = colour_type_queries(gallery, min_items=2)
    assert texts == ["multicolour t-shirts", "red dresses", "red t-shirts"], "pairs below min_items dropped"
    red_dresses = query_set.relevant[texts.index("red dresses")]
    assert red_dresses.tolist() == [True] * 3 + [False] * 6, "a blue dress or a red t-shirt is not relevant"
    assert query_set.name == "text->image colour+type"


def test_shopper_queries_keep_answerable_queries_and_mark_their_types():
    kinds = ["Tshirts"] * 3 + ["Kurtas", "Kurtis"] + ["Watches"]
    gallery = [style(str(i), t) for i, t in enumerate(kinds)]
    queries = (("t-shirt", ("Tshirts",)), ("women's kurta", ("Kurtas", "Kurtis")), ("heels", ("Heels",)))
    query_set, texts = shopper_queries(gallery, min_items=2, queries=queries)
    assert texts == ["t-shirt", "women's kurta"], "a query with fewer than min_items answers is dropped"
    assert query_set.relevant[0].tolist() == [True] * 3 + [False] * 3
    assert query_set.relevant[1].tolist() == [False] * 3 + [True, True, False]


def test_a_joined_label_gives_one_class_per_pair(fashion: Path, tmp_path: Path):
    from training.config import MemberConfig

    data = prepare(fashion, geometry_for(TINY_MODEL, PREPROCESS), tmp_path / "cache")
    labels, classes = data.labels("baseColour+articleType")
    pairs = {(p.value("baseColour"), p.value("articleType")) for p in data.catalog.products}
    assert sorted(classes) == sorted(f"{colour}|{kind}" for colour, kind in pairs)
    for product, label in zip(data.catalog.products, labels, strict=True):
        assert classes[label] == f"{product.value('baseColour')}|{product.value('articleType')}"
    member = MemberConfig(name="c0", arch="x", loss="clip+supcon+ce", label="baseColour+articleType")
    member.validate()
    for bad in ("colour+articleType", "item_id+articleType", "articleType+articleType"):
        with pytest.raises(ValueError, match=re.escape(f"member c0: unknown label '{bad}'")):
            replace(member, label=bad).validate()
