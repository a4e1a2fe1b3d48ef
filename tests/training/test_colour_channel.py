"""The colour channel: fitted after a pretrained member, joined to its vectors, served the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from domain.bundle import Bundle, MemberSpec
from domain.colour_channel import COLOUR_KEY, ColourChannelCfg, member_dim
from domain.members import load_member, save_member
from domain.query_vectors import image_query_vector
from training.colour_channel import ColourFit, add_colour_channels, caption_targets, colour_classes
from training.config import config_from_dict
from training.data.images import geometry_for
from training.data.prepared import prepare
from training.data.synthetic import write_synthetic_catalog
from training.defaults import pretrained_member
from training.retrieval import embed_images, embed_texts
from training.train import train_member

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def channel_run(tmp_path_factory):
    """A tiny pretrained member trained on a synthetic catalog, then given the channel."""
    root = tmp_path_factory.mktemp("colour")
    catalog = write_synthetic_catalog(root / "catalog", 210, seed=7)
    member = pretrained_member("p0", 0, "clip", 0, steps=10, pk=(7, 6))
    data = prepare(catalog, geometry_for(member.model_config(), member.preprocess), root / "cache")
    run = train_member(member, data, root / "run")
    fit = ColourFit(min_items=5, epochs=60)
    (joined,) = add_colour_channels([run], data, fit)
    return data, run, joined, root


def test_channel_adds_one_dimension_per_colour_and_keeps_image_vectors_one_length(channel_run):
    data, _, joined, _ = channel_run
    channel = ColourChannelCfg.from_dict(joined.model_cfg[COLOUR_KEY])
    assert list(channel.classes) == colour_classes(data, 5) and channel.size >= 3
    assert member_dim(joined.model_cfg) == 128 + channel.size
    pixels = data.pixels(geometry_for(joined.model_cfg, joined.preprocess_cfg))
    raw = joined.model.encode_image(pixels.batch(np.arange(20)))
    assert raw.shape == (20, 128 + channel.size)
    norms = raw.norm(dim=-1)
    assert torch.allclose(norms, torch.full_like(norms, (1 + channel.weight) ** 0.5), atol=1e-4)


def test_a_colour_query_ranks_that_colour_first_and_a_colourless_one_is_neutral(channel_run):
    data, _, joined, _ = channel_run
    channel = ColourChannelCfg.from_dict(joined.model_cfg[COLOUR_KEY])
    pixels = data.pixels(geometry_for(joined.model_cfg, joined.preprocess_cfg))
    every = np.arange(len(data.catalog))
    images = embed_images(joined.model, pixels, every, CPU)
    colours = np.array([p.value("baseColour") for p in data.catalog.products])
    tokenizer = load_tokenizer(joined)
    for colour in channel.classes[:3]:
        text = embed_texts(joined.model, tokenizer, [f"{colour.lower()} items"], CPU)[0]
        part = images[:, -channel.size :] @ text[-channel.size :]
        assert part[colours == colour].mean() > part[colours != colour].max() * 0.5, colour
        top = np.argsort(-part)[:10]
        assert (colours[top] == colour).mean() >= 0.8, (colour, colours[top])


def test_served_member_gives_the_same_vectors_as_training(channel_run, tmp_path: Path):
    data, _, joined, _ = channel_run
    folder = save_member(joined.model, joined.model_cfg, joined.preprocess_cfg, tmp_path / "p0")
    spec = MemberSpec(
        name="p0", arch="lite0", dim=member_dim(joined.model_cfg), image_size=96, path=str(folder)
    )
    loaded = load_member(spec, Bundle(name="b", version="1", members=(spec,), root=tmp_path))
    pixels = data.pixels(geometry_for(joined.model_cfg, joined.preprocess_cfg))
    rows = np.arange(32)
    assert np.allclose(
        embed_images(loaded.model, pixels, rows, CPU),
        embed_images(joined.model, pixels, rows, CPU),
        atol=1e-5,
    )
    texts = ["red t-shirts", "a photo of caps"]
    served = embed_texts(loaded.model, loaded.tokenizer, texts, CPU)
    assert np.allclose(served, embed_texts(joined.model, loaded.tokenizer, texts, CPU), atol=1e-5)
    assert served.shape[1] == spec.dim


def test_image_queries_can_leave_the_channel_out(channel_run):
    data, run, joined, _ = channel_run
    size = ColourChannelCfg.from_dict(joined.model_cfg[COLOUR_KEY]).size
    pixels = data.pixels(geometry_for(joined.model_cfg, joined.preprocess_cfg))
    vectors = embed_images(joined.model, pixels, np.arange(40), CPU)
    query = image_query_vector(vectors[0], size)
    assert not query[-size:].any() and vectors[0][-size:].any(), "the input is left as it was"
    # the masked query scores every item by the member's own vectors (scaled by the channel's share)
    own = vectors[:, :-size] / np.linalg.norm(vectors[:, :-size], axis=1, keepdims=True)
    scale = (1 + ColourChannelCfg.from_dict(joined.model_cfg[COLOUR_KEY]).weight) ** 0.5
    assert np.allclose((vectors @ query) * scale, own @ own[0], atol=1e-5)
    assert np.isclose(np.linalg.norm(query), 1.0)


def test_caption_targets_name_the_colour_or_stay_uniform(channel_run):
    data, *_ = channel_run
    classes = colour_classes(data, 5)
    targets = caption_targets(data, classes)
    assert np.allclose(targets.sum(1), 1.0)
    for i, text in enumerate(data.captions.texts):
        named = [c for c in classes if c.lower() in text.lower().split()]
        if not named:
            assert np.allclose(targets[i], 1.0 / len(classes)), text


def test_bad_channel_settings_are_named():
    with pytest.raises(ValueError, match="colour_channel: unknown keys"):
        config_from_dict({"members": [_member_dict()], "colour_channel": {"wieght": 0.1}})
    with pytest.raises(ValueError, match="colour_channel: weight"):
        config_from_dict({"members": [_member_dict()], "colour_channel": {"weight": 0}})
    with pytest.raises(ValueError, match="vitrine_colour.classes"):
        ColourChannelCfg.from_dict({"classes": ["Red"]})


def _member_dict() -> dict:
    import dataclasses

    return dataclasses.asdict(pretrained_member("p0", 0, "clip", 0))


def load_tokenizer(run):
    from domain.members import make_tokenizer

    return make_tokenizer(run.model_cfg)


def test_members_sharing_a_trunk_share_the_channel_too(channel_run):
    from domain.pretrained_vision import pretrained_visual
    from domain.shared_vision import encode_images_shared, same_image_trunk

    data, run, joined, _ = channel_run
    tower = pretrained_visual(joined.model)
    pixels = data.pixels(geometry_for(joined.model_cfg, joined.preprocess_cfg))
    images = pixels.batch(np.arange(8))
    with torch.inference_mode():
        shared = encode_images_shared({"a": tower, "b": tower}, images)
        assert torch.allclose(shared["a"], joined.model.encode_image(images), atol=1e-5)
    assert same_image_trunk(tower, tower)


def test_the_image_head_averages_its_fitted_heads_on_standardized_input(channel_run):
    from domain.pretrained_vision import pretrained_visual

    data, _, joined, _ = channel_run
    channel = ColourChannelCfg.from_dict(joined.model_cfg[COLOUR_KEY])
    assert channel.heads == ColourFit().heads == 3 and channel.standardize
    head = pretrained_visual(joined.model).colour_head
    tower = pretrained_visual(joined.model)
    pixels = data.pixels(geometry_for(joined.model_cfg, joined.preprocess_cfg))
    with torch.inference_mode():
        inputs = head.inputs(pixels.batch(np.arange(30)), tower.mean, tower.std)
        # the standardization is the training photos' statistics, not the untouched 0 / 1
        assert head.shift.abs().sum() > 0 and not torch.allclose(head.scale, torch.ones_like(head.scale))
        standardized = (inputs - head.shift) / head.scale
        logits = [mlp(standardized) for mlp in head.members]
        # fitted from different seeds, the heads are different functions; the channel is their mean
        assert not torch.allclose(logits[0], logits[1], atol=1e-2)
        each = [x.softmax(-1) for x in logits]
        mean = torch.stack(each).mean(0)
        assert torch.allclose(head.channel(inputs), mean / mean.norm(dim=-1, keepdim=True), atol=1e-6)


def test_a_one_mlp_head_saved_before_averaging_still_loads():
    from domain.colour_channel import ImageColourHead

    legacy_cfg = ColourChannelCfg(("Black", "Blue", "Red"), bins=(4,))
    assert (legacy_cfg.heads, legacy_cfg.standardize) == (1, False)
    assert ColourChannelCfg.from_dict({"classes": ["Black", "Blue", "Red"], "bins": [4]}) == legacy_cfg
    torch.manual_seed(0)
    source = ImageColourHead(legacy_cfg)
    saved = {k.replace("members.0.", "net."): v for k, v in source.state_dict().items()}
    assert sorted(saved) == ["net.0.bias", "net.0.weight", "net.2.bias", "net.2.weight"]
    loaded = ImageColourHead(legacy_cfg)
    loaded.load_state_dict(saved)
    inputs = torch.rand(5, legacy_cfg.input_dim)
    assert torch.allclose(loaded.channel(inputs), source.channel(inputs))
    with pytest.raises(ValueError, match="heads must be > 0"):
        ColourChannelCfg.from_dict({"classes": ["Black", "Blue"], "heads": 0})
    with pytest.raises(ValueError, match="colour_channel: dropout"):
        ColourFit.from_dict({"dropout": 1.0})
