"""The ensemble encoder: every member loaded once, batches in, L2-normalized vectors out.

Synchronous and thread-confined: the core calls ``encode_*`` from one compute thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from domain.bundle import Bundle, load_bundle
from domain.members import LoadedMember, load_member
from domain.onnx_text import OnnxTextTrunk, runs_on_onnx
from domain.onnx_trunk import runtime_for
from domain.preprocess import SplitTransform, split_transform
from domain.pretrained_vision import use_onnx_runtime
from domain.shared_text import encode_shared, shared_trunk_groups
from domain.shared_vision import encode_images_shared, shared_image_groups
from domain.text import encode_text_trimmed, trim_padding
from services.common.config import EmbedderConfig

log = logging.getLogger("vitrine.embedder")

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class ImageItem:
    """One decoded image after resize/crop: uint8 arrays (or ready tensors) per requested member."""

    pixels: Mapping[str, np.ndarray | torch.Tensor]


@dataclass(frozen=True)
class TextItem:
    """One text, tokenized for each member that was asked for (full context length)."""

    tokens: Mapping[str, torch.Tensor]


Vectors = dict[str, np.ndarray]


def select_device(requested: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; explicit choices are checked."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {requested!r}; valid: auto, cpu, cuda, cuda:N")
    return device


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_threads(decode_workers: int) -> int:
    """Torch CPU threads when none are configured: the cores left after the decode workers (>= 1).

    The decode threads, gRPC and the model share the machine's cores; a model thread on a core the
    decoders need spins instead of helping. On 2 cores, 1 model thread serves images 1.65x faster
    than 2 (small image towers gain little from a second intra-op thread). Pretrained trunks on
    ONNX Runtime get every core instead (its pool sleeps between runs): 229 vs 126 img/s served.
    A bundle with such trunks gives torch every core too (``EnsembleEncoder.load``): their tuned
    stages, heads and colour histograms run in torch, and every core served them faster in each of
    three runs side by side (232 vs 222, 189 vs 174 and 165 vs 156 img/s on 2 cores).
    """
    return max(1, available_cores() - max(0, decode_workers))


def select_precision(requested: str, device: torch.device) -> str:
    """``auto`` -> fp16 on CUDA, fp32 on CPU."""
    if requested == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; valid: auto, {', '.join(PRECISIONS)}")
    return requested


class EnsembleEncoder:
    """Loaded bundle members plus device/precision policy."""

    def __init__(
        self,
        bundle: Bundle,
        members: Mapping[str, LoadedMember],
        device: torch.device,
        precision: str,
        text_runtime: str = "torch",
        onnx_threads: int = 1,
    ):
        """``text_runtime`` ``onnx`` runs each shared text trunk on ONNX Runtime with ``onnx_threads``."""
        self.bundle = bundle
        self.members = dict(members)
        self.device = device
        self.precision = precision
        self._split: dict[str, SplitTransform | None] = {
            name: split_transform(m.preprocess) for name, m in self.members.items()
        }
        self._text_groups = shared_trunk_groups({name: m.model for name, m in self.members.items()})
        self._text_runtimes: list[OnnxTextTrunk | None] = [
            OnnxTextTrunk(next(iter(group.values())), onnx_threads)
            if text_runtime == "onnx" and runs_on_onnx(next(iter(group.values())))
            else None
            for group in self._text_groups
        ]
        geometry = {name: None if split is None else split.key for name, split in self._split.items()}
        self._image_groups = shared_image_groups(
            {name: m.model for name, m in self.members.items()}, geometry
        )

    @classmethod
    def load(cls, cfg: EmbedderConfig, bundle_path: str | None = None) -> EnsembleEncoder:
        """Load every member of the bundle at ``bundle_path`` (default ``cfg.bundle``)."""
        threads = cfg.threads or default_threads(cfg.decode_workers)
        torch.set_num_threads(threads)
        device = select_device(cfg.device)
        precision = select_precision(cfg.precision, device)
        image_runtime = runtime_for(cfg.image_runtime, device)
        text_runtime = runtime_for(cfg.text_runtime, device, "text_runtime")
        bundle = load_bundle(bundle_path or cfg.bundle)
        members = {spec.name: load_member(spec, bundle, device) for spec in bundle.members}
        onnx_trunks = (
            use_onnx_runtime([m.model for m in members.values()], cfg.threads or available_cores())
            if image_runtime == "onnx"
            else []
        )
        if onnx_trunks and not cfg.threads:  # pretrained towers: every core for torch too
            threads = available_cores()
            torch.set_num_threads(threads)
        encoder = cls(bundle, members, device, precision, text_runtime, cfg.threads or available_cores())
        log.info(
            "bundle loaded",
            extra={
                "bundle": bundle.name,
                "version": bundle.version,
                "members": list(members),
                "device": str(device),
                "precision": precision,
                "threads": threads,
                "onnx_image_trunks": onnx_trunks,
                "onnx_text_trunks": encoder.onnx_text_trunks,
                "shared_text_trunks": encoder.shared_text_trunks,
                "shared_image_trunks": encoder.shared_image_trunks,
            },
        )
        return encoder

    @property
    def shared_text_trunks(self) -> list[tuple[str, ...]]:
        """Groups of members whose text trunk runs once per batch for all of them."""
        return [tuple(group) for group in self._text_groups]

    @property
    def onnx_text_trunks(self) -> list[tuple[str, ...]]:
        """The shared text trunk groups whose transformer runs on ONNX Runtime."""
        return [tuple(g) for g, rt in zip(self._text_groups, self._text_runtimes, strict=True) if rt]

    @property
    def shared_image_trunks(self) -> list[tuple[str, ...]]:
        """Groups of members whose pretrained image trunk runs once per batch for all of them."""
        return [tuple(group) for group in self._image_groups]

    @property
    def member_names(self) -> tuple[str, ...]:
        """Member names in bundle order."""
        return self.bundle.member_names

    def context_length(self) -> int:
        """Smallest text context across members (what truncation warnings refer to)."""
        return min(m.context_length for m in self.members.values())

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        with torch.inference_mode():
            if self.precision == "fp32":
                yield
            else:
                with torch.autocast(self.device.type, dtype=PRECISIONS[self.precision]):
                    yield

    def prepare_image(self, image: Image.Image, members: Sequence[str]) -> ImageItem:
        """Resize/crop for each requested member (CPU work, any thread); shared geometry is done once."""
        done: dict[str, np.ndarray] = {}
        pixels: dict[str, np.ndarray | torch.Tensor] = {}
        for m in members:
            split = self._split[m]
            if split is None:
                pixels[m] = self.members[m].preprocess(image)
                continue
            if split.key not in done:
                done[split.key] = split.pixels(image)
            pixels[m] = done[split.key]
        return ImageItem(pixels)

    def _image_batch(self, member: str, pixels: list[np.ndarray | torch.Tensor]) -> torch.Tensor:
        split = self._split[member]
        if split is None:
            return torch.stack(pixels)  # type: ignore[arg-type]
        return split.to_batch(pixels)  # type: ignore[arg-type]

    def prepare_text(self, text: str, members: Sequence[str]) -> TextItem:
        """Tokenize for each requested member (truncates to the member's context length)."""
        return TextItem({m: self.members[m].tokenizer([text])[0] for m in members})

    def token_count(self, text: str, member: str) -> int:
        """Tokens ``text`` needs under ``member`` before truncation (start/end tokens included)."""
        tokenizer = self.members[member].tokenizer
        hf = getattr(tokenizer, "tokenizer", None)
        if hf is not None:
            return len(hf(text)["input_ids"])
        return len(tokenizer.encode(text)) + 2

    def _run(
        self,
        items: Sequence[ImageItem | TextItem],
        attr: str,
        forward,
        collate,
        out: list[Vectors] | None = None,
    ) -> list[Vectors]:
        """Per member, collate its rows and run ``forward``; members already in ``out`` are skipped."""
        out = [{} for _ in items] if out is None else out
        wanted = [name for name in self.member_names if any(name in getattr(i, attr) for i in items)]
        with self._autocast():
            for name in wanted:
                rows = [k for k, item in enumerate(items) if name in getattr(item, attr)]
                if all(name in out[k] for k in rows):
                    continue
                batch = collate(name, [getattr(items[k], attr)[name] for k in rows]).to(self.device)
                _scatter(out, rows, {name: forward(self.members[name].model, batch)})
        return out

    def _shared_text(self, items: Sequence[TextItem], trim: bool) -> list[Vectors]:
        """Vectors of members that share a text trunk, one trunk forward per group (see shared_text)."""
        out: list[Vectors] = [{} for _ in items]
        with self._autocast():
            for group, runtime in zip(self._text_groups, self._text_runtimes, strict=True):
                shared = _shared_rows(group, items, "tokens")
                if shared is None:
                    continue
                members, rows = shared
                tokens = {m: torch.stack([items[k].tokens[m] for k in rows]) for m in members}
                first = tokens[members[0]]
                if any(not torch.equal(first, tokens[m]) for m in members[1:]):
                    continue  # different tokenizers after all
                batch = (trim_padding(first) if trim else first).to(self.device)
                _scatter(out, rows, encode_shared({m: group[m] for m in members}, batch, runtime))
        return out

    def _shared_images(self, items: Sequence[ImageItem]) -> list[Vectors]:
        """Vectors of members that share a pretrained image trunk, one trunk forward per group."""
        out: list[Vectors] = [{} for _ in items]
        with self._autocast():
            for group in self._image_groups:
                shared = _shared_rows(group, items, "pixels")
                if shared is None:
                    continue
                members, rows = shared
                batch = self._image_batch(members[0], [items[k].pixels[members[0]] for k in rows])
                _scatter(
                    out, rows, encode_images_shared({m: group[m] for m in members}, batch.to(self.device))
                )
        return out

    def encode_images(self, items: Sequence[ImageItem], share: bool = True) -> list[Vectors]:
        """Normalized image vectors per member for a batch; ``share`` runs a pretrained image trunk
        that several members share once per batch (same vectors)."""
        out = self._shared_images(items) if share and self._image_groups else None
        return self._run(items, "pixels", lambda model, x: model.encode_image(x), self._image_batch, out)

    def encode_texts(self, items: Sequence[TextItem], trim: bool = True, share: bool = True) -> list[Vectors]:
        """Normalized text vectors per member; ``trim`` cuts padding to the longest real sequence.

        ``share`` runs a text trunk that several members share once per batch (same vectors).
        """
        if trim:
            forward = lambda model, t: encode_text_trimmed(model, trim_padding(t))  # noqa: E731
        else:
            forward = lambda model, t: model.encode_text(t)  # noqa: E731
        out = self._shared_text(items, trim) if share and self._text_groups else None
        return self._run(items, "tokens", forward, lambda _name, tokens: torch.stack(tokens), out)


def _shared_rows(group: Sequence[str], items: Sequence, attr: str) -> tuple[list[str], list[int]] | None:
    """The group's members that ``items`` ask for (in ``attr``) and the rows asking, when at least two
    members are asked for and every such row asks for all of them; else None (each member runs alone)."""
    members = [m for m in group if any(m in getattr(item, attr) for item in items)]
    if len(members) < 2:
        return None
    rows = [k for k, item in enumerate(items) if members[0] in getattr(item, attr)]
    if any(not all(m in getattr(items[k], attr) for m in members) for k in rows):
        return None
    return members, rows


def _scatter(out: list[Vectors], rows: Sequence[int], features: Mapping[str, torch.Tensor]) -> None:
    """L2-normalize each member's batch features and write row ``i`` to ``out[rows[i]]``."""
    for name, batch in features.items():
        array = F.normalize(batch.float(), dim=-1).cpu().numpy()
        for row, k in enumerate(rows):
            out[k][name] = array[row]
