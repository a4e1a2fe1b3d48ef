"""Run a frozen pretrained trunk on ONNX Runtime's CPU kernels (image trunks here; the shared
text trunk in :mod:`domain.onnx_text` uses the same export and session helpers).

A pretrained member's trunk (``domain.pretrained_vision``) never trains, so on CPU its forward can
run on ONNX Runtime instead of torch: the trunk is exported once when the member loads (about 2.5 s,
in memory, nothing written) and the session runs the same function. Measured on 2 cores at 96 px,
batch 32: EfficientNet-Lite0 602 vs 271 img/s, Lite1 515 vs 217 img/s (2.2-2.4x); outputs agree
with torch to about 1e-5.

The export uses torch's TorchScript-based exporter (``dynamo=False``): it exports a Lite trunk in
2.5 s where the torch.export-based one takes about 19 s per trunk, which would add that much to
every embedder start. torch is pinned, and ``tests/domain/test_onnx_trunk.py`` checks the outputs.

``runtime_for`` picks the runtime: ``auto`` is ONNX Runtime on CPU and torch on CUDA.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

RUNTIMES = ("auto", "onnx", "torch")


class OnnxTrunk:
    """An ONNX Runtime session computing ``trunk(images)`` for float32 CPU batches of any size."""

    def __init__(self, trunk: nn.Module, image_size: tuple[int, int], threads: int):
        self.threads = threads
        self.session = cpu_session(export_trunk(trunk, image_size), threads)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled trunk features (B, C) of a normalized (B, 3, H, W) batch, as float32 on CPU."""
        array = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        (features,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(features)


def cpu_session(model: bytes, threads: int) -> Any:
    """An ONNX Runtime CPU session over ``model`` with ``threads`` intra-op threads that do not spin."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads would spin after each run, taking the cores torch needs for the heads,
    # the other members and image decoding in the same process.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def export_module(
    module: nn.Module,
    samples: tuple[torch.Tensor, ...],
    inputs: Sequence[str],
    outputs: Sequence[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> bytes:
    """``module`` (in eval mode; every submodule's mode is restored after) as an ONNX model traced on
    ``samples``."""
    buffer = io.BytesIO()
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the exporter choice, see the module doc
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks traced as constants
            torch.onnx.export(
                module,
                samples,
                buffer,
                input_names=list(inputs),
                output_names=list(outputs),
                dynamic_axes=dynamic_axes,
                dynamo=False,
            )
    finally:
        for m, training in modes:
            m.training = training
    return buffer.getvalue()


def export_trunk(trunk: nn.Module, image_size: tuple[int, int]) -> bytes:
    """The trunk as an ONNX model (bytes) with a dynamic batch axis; the trunk is left unchanged."""
    batch = {0: "batch"}
    return export_module(
        trunk,
        (torch.zeros(2, 3, *image_size),),
        ["images"],
        ["features"],
        {"images": batch, "features": batch},
    )


def runtime_for(requested: str, device: torch.device, setting: str = "image_runtime") -> str:
    """``onnx`` or ``torch``: ``auto`` is ONNX Runtime on CPU, torch elsewhere; ``onnx`` off CPU is an
    error. ``setting`` names the config field in errors."""
    if requested not in RUNTIMES:
        raise ValueError(f"{setting} {requested!r}: expected one of {list(RUNTIMES)}")
    if requested == "onnx" and device.type != "cpu":
        raise ValueError(f"{setting} 'onnx' runs on CPU only, not on {device}; use 'auto' or 'torch'")
    if requested == "auto":
        return "onnx" if device.type == "cpu" else "torch"
    return requested


__all__ = ["RUNTIMES", "OnnxTrunk", "cpu_session", "export_module", "export_trunk", "runtime_for"]
