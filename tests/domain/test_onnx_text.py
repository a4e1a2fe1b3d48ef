"""The shared MiniLM text transformer on ONNX Runtime computes what torch computes, for any batch and
sequence length; poolers that read the pooler output stay in torch."""

from __future__ import annotations

import pytest
import torch

from domain.members import build_model, make_tokenizer
from domain.onnx_text import OnnxTextTrunk, runs_on_onnx
from tests.support.minilm import minilm_member_cfg

CFG = minilm_member_cfg()


@pytest.fixture(scope="module")
def tower():
    torch.manual_seed(0)
    return build_model(CFG).eval().text


@pytest.mark.parametrize(
    "texts", [["red dress"], ["a", "black leather watch with a long strap for women", "kurta"]]
)
def test_hidden_states_match_torch_on_real_tokens(tower, texts):
    tokens = make_tokenizer(CFG)(texts)
    longest = int((tokens != tower.config.pad_token_id).sum(dim=1).max())
    tokens = tokens[:, :longest]  # trimmed as the embedder sends them: another shape than the export's
    mask = (tokens != tower.config.pad_token_id).long()
    runtime = OnnxTextTrunk(tower, threads=1)
    with torch.inference_mode():
        expected = tower.transformer(input_ids=tokens, attention_mask=mask).last_hidden_state
        got = runtime(tokens, mask).last_hidden_state
    assert got.shape == expected.shape == (len(texts), longest, tower.config.hidden_size)
    real = mask.bool()  # padded positions are masked out by every pooler
    assert torch.allclose(got[real], expected[real], atol=1e-4)
    with torch.inference_mode():
        assert torch.allclose(
            tower.pooler(runtime(tokens, mask), mask),
            tower.pooler(tower.transformer(input_ids=tokens, attention_mask=mask), mask),
            atol=1e-4,
        )


def test_a_pooler_reading_the_pooler_output_stays_in_torch(tower, monkeypatch):
    assert runs_on_onnx(tower)
    monkeypatch.setattr(tower.pooler, "use_pooler_output", True, raising=False)
    assert not runs_on_onnx(tower)
    with pytest.raises(ValueError, match="keep it in torch"):
        OnnxTextTrunk(tower, threads=1)


def test_export_leaves_every_submodule_in_its_mode(tower):
    tower.transformer.train()
    try:
        OnnxTextTrunk(tower, threads=1)
        assert all(m.training for m in tower.transformer.modules())
    finally:
        tower.transformer.eval()
    OnnxTextTrunk(tower, threads=1)
    assert not any(m.training for m in tower.transformer.modules())
