"""Text encoding with the padded context cut to the batch's longest real sequence.

open_clip's causal text transformer pools at the end-of-text token and every position only
attends to earlier ones, so dropping trailing padding leaves the outputs unchanged while the
transformer does far less work (short product queries use ~8 of 77 positions).
"""

from __future__ import annotations

import open_clip
import torch
from open_clip.transformer import TextTransformer, text_global_pool


def real_lengths(tokens: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Per row, index of the last non-pad token + 1."""
    positions = torch.arange(1, tokens.shape[1] + 1, device=tokens.device)
    return ((tokens != pad_id).long() * positions).amax(dim=1)


def trim_padding(tokens: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Cut trailing columns that are padding in every row."""
    longest = int(real_lengths(tokens, pad_id).max().item()) if tokens.numel() else 0
    return tokens[:, : max(longest, 1)]


def _causal_tower(model: torch.nn.Module) -> tuple[torch.nn.Module, str] | None:
    """The module holding the causal text transformer's parts, and its pool type attribute."""
    if isinstance(model, open_clip.CLIP):
        return model, "text_pool_type"
    text = getattr(model, "text", None)
    if (
        isinstance(text, TextTransformer)
        and text.cls_emb is None
        and not getattr(text, "use_pad_mask", False)
    ):
        return text, "pool_type"
    return None


def encode_text_trimmed(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text`` on trimmed tokens (unnormalized), identical to the full-length path."""
    found = _causal_tower(model)
    if found is None:
        # Hugging Face towers mask padding themselves: trimming is exact for them too.
        return model.encode_text(tokens)
    tower, pool_attr = found
    seq = tokens.shape[1]
    cast_dtype = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(tokens).to(cast_dtype)
    x = x + tower.positional_embedding[:seq].to(cast_dtype)
    mask = tower.attn_mask[:seq, :seq] if tower.attn_mask is not None else None
    x = tower.transformer(x, attn_mask=mask)
    x = tower.ln_final(x)
    eos = getattr(tower, "text_eos_id", None) or getattr(tower, "eos_id", None)
    x = text_global_pool(x, tokens, getattr(tower, pool_attr), eos_token_id=eos)
    projection = tower.text_projection
    if projection is not None:
        x = projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection
    return x
