"""Cutting padded context to the longest real sequence leaves text vectors unchanged."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from domain.bundle import load_bundle
from domain.members import build_model, load_member, make_tokenizer
from domain.text import encode_text_trimmed, real_lengths, trim_padding
from tests.support.minilm import minilm_member_cfg

TEXTS = ["red dress", "a photo of white polo t-shirts for men", "watch", "blue denim jeans with a slim fit"]


def test_real_lengths_and_trim():
    tokens = torch.tensor([[5, 6, 9, 0, 0, 0], [5, 9, 0, 0, 0, 0]])
    assert real_lengths(tokens).tolist() == [3, 2]
    assert trim_padding(tokens).shape == (2, 3)


def test_trimmed_matches_full_length_for_every_member(random_bundle):
    bundle = load_bundle(random_bundle)
    for spec in bundle.members:
        member = load_member(spec, bundle)
        tokens = member.tokenizer(TEXTS)
        with torch.inference_mode():
            full = member.model.encode_text(tokens)
            trimmed = encode_text_trimmed(member.model, trim_padding(tokens))
        assert trim_padding(tokens).shape[1] < tokens.shape[1]
        cos = F.cosine_similarity(full, trimmed, dim=-1)
        assert cos.min().item() >= 0.9999, (spec.name, cos)


def test_trimmed_matches_for_frozen_hf_text_tower():
    cfg = minilm_member_cfg(embed_dim=32, context_length=40)
    model = build_model(cfg).eval()
    tokens = make_tokenizer(cfg)(TEXTS)
    with torch.inference_mode():
        full = model.encode_text(tokens)
        trimmed = encode_text_trimmed(model, trim_padding(tokens))
    assert F.cosine_similarity(full, trimmed, dim=-1).min().item() >= 0.9999
