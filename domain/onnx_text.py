"""Run a frozen Hugging Face text transformer (the shared MiniLM trunk) on ONNX Runtime on CPU.

The members of the offline bundles share one frozen pretrained text transformer
(:mod:`domain.shared_text`); only their poolers and projections differ. On CPU a one-query
forward of that transformer is mostly per-operator overhead in torch, so the embedder exports it
once when the bundle loads (about 2 s, in memory) and runs it on ONNX Runtime; the poolers and
projections stay in torch. Measured on 2 cores, one 7-token query, one thread: 12.3 ms in torch,
4.3 ms on ONNX Runtime, hidden states equal to about 2e-6 (``tests/domain/test_onnx_text.py``).

Batch and sequence axes are dynamic, so the padding-trimmed batches of any shape run as they are.
"""

from __future__ import annotations

import numpy as np
import torch
from open_clip.hf_model import HFTextEncoder
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from domain.onnx_trunk import cpu_session, export_module

INPUTS = ("input_ids", "attention_mask")


class _HiddenStates(nn.Module):
    """The transformer as a function of (ids, mask) returning the last hidden states only."""

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def runs_on_onnx(tower: HFTextEncoder) -> bool:
    """Whether the tower's pooler reads only the last hidden states (what the session returns)."""
    return not getattr(tower.pooler, "use_pooler_output", False)


class OnnxTextTrunk:
    """An ONNX Runtime session computing ``transformer(input_ids, attention_mask)`` on CPU."""

    def __init__(self, tower: HFTextEncoder, threads: int) -> None:
        if not runs_on_onnx(tower):
            raise ValueError("this text tower pools the transformer's pooler output; keep it in torch")
        sample = torch.full((2, 4), 1, dtype=torch.long)
        axes = {"batch": 0, "tokens": 1}
        dynamic = {name: {i: axis for axis, i in axes.items()} for name in (*INPUTS, "hidden")}
        self.threads = threads
        self.session = cpu_session(
            export_module(
                _HiddenStates(tower.transformer),
                (sample, torch.ones_like(sample)),
                INPUTS,
                ["hidden"],
                dynamic,
            ),
            threads,
        )

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> BaseModelOutput:
        """The transformer's output (``last_hidden_state`` only) for a CPU batch of token ids."""
        feed = {
            "input_ids": np.ascontiguousarray(input_ids.to("cpu", torch.long).numpy()),
            "attention_mask": np.ascontiguousarray(attention_mask.to("cpu", torch.long).numpy()),
        }
        (hidden,) = self.session.run(None, feed)
        return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden))


__all__ = ["OnnxTextTrunk", "runs_on_onnx"]
