"""Members on one frozen Hugging Face text trunk share its forward and still get their own vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from domain.bundle import Bundle, FusionSpec, MemberSpec
from domain.members import LoadedMember, build_model, make_tokenizer
from domain.shared_text import shared_trunk_groups
from services.embedder.encoder import EnsembleEncoder
from tests.support.minilm import minilm_member_cfg

TEXTS = ["red dress", "a photo of white polo t-shirts for men", "watch"]
CFG = minilm_member_cfg()


@pytest.fixture(scope="module")
def encoder() -> EnsembleEncoder:
    """Three MiniLM members with their own projections; m3's trunk is changed a little."""
    torch.manual_seed(0)
    models = {name: build_model(CFG).eval() for name in ("m1", "m2", "m3")}
    with torch.no_grad():
        next(iter(models["m3"].text.transformer.parameters())).add_(1e-3)
    tokenizer = make_tokenizer(CFG)
    specs = [MemberSpec(name=name, arch="hf-test", dim=16, image_size=32) for name in models]
    members = {
        spec.name: LoadedMember(spec, models[spec.name], lambda image: image, tokenizer, 32) for spec in specs
    }
    bundle = Bundle(name="shared", version="1", members=tuple(specs), fusion=FusionSpec("rrf", 60))
    return EnsembleEncoder(bundle, members, torch.device("cpu"), "fp32")


def own_vectors(encoder: EnsembleEncoder, name: str) -> np.ndarray:
    tokens = encoder.members[name].tokenizer(TEXTS)
    with torch.inference_mode():
        return F.normalize(encoder.members[name].model.encode_text(tokens), dim=-1).numpy()


def test_identical_trunks_are_grouped_and_changed_ones_are_not(encoder):
    assert encoder.shared_text_trunks == [("m1", "m2")]
    assert shared_trunk_groups({"m1": encoder.members["m1"].model}) == []


@pytest.mark.parametrize("trim", [True, False])
def test_shared_forward_gives_each_member_its_own_vectors(encoder, trim):
    items = [encoder.prepare_text(text, encoder.member_names) for text in TEXTS]
    calls = {name: 0 for name in encoder.member_names}
    hooks = [
        encoder.members[name].model.text.transformer.register_forward_hook(
            lambda *_, name=name: calls.__setitem__(name, calls[name] + 1)
        )
        for name in calls
    ]
    try:
        got = encoder.encode_texts(items, trim=trim)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == {"m1": 1, "m2": 0, "m3": 1}  # one trunk forward for m1 + m2
    for name in ("m1", "m2", "m3"):
        np.testing.assert_allclose(np.stack([v[name] for v in got]), own_vectors(encoder, name), atol=1e-5)
    assert not np.allclose(got[0]["m1"], got[0]["m2"])  # own projections


def test_members_asked_for_different_rows_run_on_their_own(encoder):
    items = [encoder.prepare_text(TEXTS[0], ("m1", "m2")), encoder.prepare_text(TEXTS[1], ("m2",))]
    got = encoder.encode_texts(items)
    assert sorted(got[0]) == ["m1", "m2"] and sorted(got[1]) == ["m2"]
    np.testing.assert_allclose(got[1]["m2"], own_vectors(encoder, "m2")[1], atol=1e-5)
    np.testing.assert_allclose(got[0]["m1"], own_vectors(encoder, "m1")[0], atol=1e-5)


def test_shared_trunk_on_onnx_runtime_gives_the_torch_vectors(encoder):
    """text_runtime onnx: the shared transformer runs on ONNX Runtime (torch's is not called), same vectors."""
    onnx = EnsembleEncoder(
        encoder.bundle, encoder.members, encoder.device, "fp32", text_runtime="onnx", onnx_threads=1
    )
    assert onnx.onnx_text_trunks == [("m1", "m2")] and encoder.onnx_text_trunks == []
    items = [onnx.prepare_text(text, onnx.member_names) for text in TEXTS]
    calls = []
    hook = onnx.members["m1"].model.text.transformer.register_forward_hook(lambda *_: calls.append(1))
    try:
        got = onnx.encode_texts(items)
    finally:
        hook.remove()
    assert calls == [], "the torch transformer of the shared group did not run"
    for name in ("m1", "m2", "m3"):
        np.testing.assert_allclose(np.stack([v[name] for v in got]), own_vectors(encoder, name), atol=1e-5)
