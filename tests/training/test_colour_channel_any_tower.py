"""The colour channel on a from-scratch member (no pretrained tower) beside a pretrained one."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from domain.bundle import Bundle, MemberSpec
from domain.colour_channel import COLOUR_KEY, ColourChannelCfg, colour_histograms, member_dim
from domain.colour_tower import ColourVisual, image_colour_head
from domain.members import load_member, make_tokenizer, save_member
from training.colour_channel import ColourFit, add_colour_channels
from training.data.images import geometry_for
from training.data.prepared import prepare
from training.data.synthetic import write_synthetic_catalog
from training.defaults import default_config, pretrained_member
from training.retrieval import embed_images, embed_texts
from training.train import train_member

CPU = torch.device("cpu")
# not the pretrained towers' 0.5 / 0.5, so that the channel must carry the member's own
SCRATCH_PREPROCESS = {"mean": [0.48, 0.45, 0.41], "std": [0.27, 0.26, 0.28], "resize_mode": "squash"}


@pytest.fixture(scope="module")
def two_towers(tmp_path_factory):
    """A from-scratch member and a pretrained one, trained briefly on a synthetic catalog."""
    root = tmp_path_factory.mktemp("colour_any")
    catalog = write_synthetic_catalog(root / "catalog", 210, seed=7)
    scratch = dataclasses.replace(  # the default's from-scratch m1, briefly
        default_config().members[0], epochs=1, steps_per_epoch=5, pk=(7, 6), preprocess=SCRATCH_PREPROCESS
    )
    pretrained = pretrained_member("p0", 0, "clip", 0, steps=10, pk=(7, 6))
    data = prepare(catalog, geometry_for(pretrained.model_config(), pretrained.preprocess), root / "cache")
    runs = [train_member(m, data, root / m.name) for m in (scratch, pretrained)]
    joined = add_colour_channels(_copies(runs), data, ColourFit(min_items=5, epochs=60))
    return data, runs, joined


def _copies(runs):
    """The runs with their own copy of each model (joining the channel changes a model in place)."""
    return [dataclasses.replace(r, model=copy.deepcopy(r.model)) for r in runs]


def _pixels(data, run):
    return data.pixels(geometry_for(run.model_cfg, run.preprocess_cfg))


def test_the_scratch_member_carries_the_channel_with_its_own_normalization(two_towers):
    data, runs, (m1, p0) = two_towers
    channel = ColourChannelCfg.from_dict(m1.model_cfg[COLOUR_KEY])
    assert channel.mean == tuple(SCRATCH_PREPROCESS["mean"]) and channel.std == tuple(
        SCRATCH_PREPROCESS["std"]
    )
    assert ColourChannelCfg.from_dict(p0.model_cfg[COLOUR_KEY]).mean is None  # the tower knows its own
    assert isinstance(m1.model.visual, ColourVisual)
    assert member_dim(m1.model_cfg) == 128 + channel.size
    vectors = m1.model.encode_image(_pixels(data, m1).batch(np.arange(16)))
    assert vectors.shape == (16, 128 + channel.size)
    norms = vectors.norm(dim=-1)
    assert torch.allclose(norms, torch.full_like(norms, (1 + channel.weight) ** 0.5), atol=1e-4)
    # the member's own part is what it gave before the channel, normalized
    before = torch.nn.functional.normalize(runs[0].model.encode_image(_pixels(data, m1).batch(np.arange(16))))
    assert torch.allclose(vectors[:, :128], before, atol=1e-5)


def test_the_histograms_count_the_pixels_before_the_members_normalization(two_towers):
    data, _, (m1, _) = two_towers
    images = _pixels(data, m1).batch(np.arange(8))
    mean, std = (torch.tensor(SCRATCH_PREPROCESS[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    raw = images * std + mean  # the photos in [0, 1]
    zero, one = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    head = image_colour_head(m1.model)
    expected = colour_histograms(raw, zero, one, head.bins)
    got = head.inputs(images, m1.model.visual.mean, m1.model.visual.std)
    assert torch.allclose(got, torch.cat([expected[b] for b in head.bins], dim=1), atol=1e-5)


def test_each_geometry_has_its_own_image_head_and_the_text_head_is_shared(two_towers):
    _, _, (m1, p0) = two_towers
    left, right = image_colour_head(m1.model).state_dict(), image_colour_head(p0.model).state_dict()
    assert not torch.equal(left["shift"], right["shift"])  # 64 px squashed vs 96 px padded photos
    left, right = m1.model.text.proj.colour.state_dict(), p0.model.text.proj.colour.state_dict()
    assert left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def test_a_colour_query_ranks_that_colour_first_on_the_scratch_member(two_towers):
    data, _, (m1, _) = two_towers
    channel = ColourChannelCfg.from_dict(m1.model_cfg[COLOUR_KEY])
    images = embed_images(m1.model, _pixels(data, m1), np.arange(len(data.catalog)), CPU)
    colours = np.array([p.value("baseColour") for p in data.catalog.products])
    tokenizer = make_tokenizer(m1.model_cfg)
    for colour in channel.classes[:3]:
        text = embed_texts(m1.model, tokenizer, [f"{colour.lower()} items"], CPU)[0]
        part = images[:, -channel.size :] @ text[-channel.size :]
        top = np.argsort(-part)[:10]
        assert (colours[top] == colour).mean() >= 0.8, (colour, colours[top])


def test_the_served_scratch_member_gives_the_same_vectors(two_towers, tmp_path: Path):
    data, _, (m1, _) = two_towers
    folder = save_member(m1.model, m1.model_cfg, m1.preprocess_cfg, tmp_path / "m1")
    spec = MemberSpec(name="m1", arch="byob", dim=member_dim(m1.model_cfg), image_size=64, path=str(folder))
    loaded = load_member(spec, Bundle(name="b", version="1", members=(spec,), root=tmp_path))
    rows = np.arange(24)
    pixels = _pixels(data, m1)
    assert np.allclose(
        embed_images(loaded.model, pixels, rows, CPU), embed_images(m1.model, pixels, rows, CPU), atol=1e-5
    )
    texts = ["red t-shirts", "a photo of caps"]
    assert np.allclose(
        embed_texts(loaded.model, loaded.tokenizer, texts, CPU),
        embed_texts(m1.model, loaded.tokenizer, texts, CPU),
        atol=1e-5,
    )


def test_members_chooses_who_carries_the_channel(two_towers):
    data, runs, _ = two_towers
    fresh = _copies(runs)
    m1, p0 = add_colour_channels(fresh, data, ColourFit(min_items=5, epochs=2, members=("p0",)))
    assert COLOUR_KEY not in m1.model_cfg and not isinstance(m1.model.visual, ColourVisual)
    assert COLOUR_KEY in p0.model_cfg
    with pytest.raises(ValueError, match=r"colour_channel.members: no member named \['m9'\]"):
        add_colour_channels(fresh, data, ColourFit(members=("m9",)))
    with pytest.raises(ValueError, match="colour_channel.members: expected a list"):
        ColourFit.from_dict({"members": "p0"})


def test_a_tower_without_its_normalization_is_refused():
    channel = ColourChannelCfg(("Black", "Blue"))
    with pytest.raises(ValueError, match="needs 'mean' and 'std'"):
        ColourVisual(torch.nn.Identity(), channel)
    with pytest.raises(ValueError, match="vitrine_colour.std"):
        ColourChannelCfg.from_dict({"classes": ["Black", "Blue"], "mean": [0, 0, 0], "std": [1, 0, 1]})
    with pytest.raises(ValueError, match="vitrine_colour.mean: expected three numbers"):
        ColourChannelCfg.from_dict({"classes": ["Black", "Blue"], "mean": [0.5], "std": [1, 1, 1]})
