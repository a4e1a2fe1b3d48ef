"""Run a frozen pretrained image trunk on ONNX Runtime's CPU kernels.

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

import numpy as np
import torch
from torch import nn

RUNTIMES = ("auto", "onnx", "torch")


class OnnxTrunk:
    """An ONNX Runtime session computing ``trunk(images)`` for float32 CPU batches of any size."""

    def __init__(self, trunk: nn.Module, image_size: tuple[int, int], threads: int):
        import onnxruntime as ort

        self.threads = threads
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads would spin after each run, taking the cores torch needs for the heads,
        # the other members and image decoding in the same process.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            export_trunk(trunk, image_size), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled trunk features (B, C) of a normalized (B, 3, H, W) batch, as float32 on CPU."""
        array = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        (features,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(features)


def export_trunk(trunk: nn.Module, image_size: tuple[int, int]) -> bytes:
    """The trunk as an ONNX model (bytes) with a dynamic batch axis; the trunk is left unchanged."""
    sample = torch.zeros(2, 3, *image_size)
    buffer = io.BytesIO()
    was_training = trunk.training
    trunk.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the exporter choice, see the module doc
            torch.onnx.export(
                trunk,
                (sample,),
                buffer,
                input_names=["images"],
                output_names=["features"],
                dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                dynamo=False,
            )
    finally:
        trunk.train(was_training)
    return buffer.getvalue()


def runtime_for(requested: str, device: torch.device) -> str:
    """``onnx`` or ``torch``: ``auto`` is ONNX Runtime on CPU, torch elsewhere; ``onnx`` off CPU is an error."""
    if requested not in RUNTIMES:
        raise ValueError(f"image_runtime {requested!r}: expected one of {list(RUNTIMES)}")
    if requested == "onnx" and device.type != "cpu":
        raise ValueError(f"image_runtime 'onnx' runs on CPU only, not on {device}; use 'auto' or 'torch'")
    if requested == "auto":
        return "onnx" if device.type == "cpu" else "torch"
    return requested


__all__ = ["RUNTIMES", "OnnxTrunk", "export_trunk", "runtime_for"]
