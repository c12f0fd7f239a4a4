"""timm backbones as offline feature extractors, plus the weight checks the loaders share.

Backbones are always built with `pretrained=False` (no hub access); trained weights
come either from a bundle or from a LOCAL .safetensors file (`pretrained_path`).
Two feature layouts are supported: CNN maps (B, C, h, w) and ViT tokens (B, N, C)
whose first `num_prefix_tokens` are class/register tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import engine.compat  # noqa: F401  (must precede timm)

# isort: split
import safetensors
import safetensors.torch
import timm
import torch
from torch import nn

from engine.models.registry import ModelConfigError

BACKBONE_PREFIX = "backbone."


@dataclass(frozen=True)
class BackboneInfo:
    """What a model needs to know about its backbone's output."""

    layout: str  # "map" (B, C, h, w) or "tokens" (B, N, C)
    feature_dim: int
    num_prefix_tokens: int = 0
    grid: tuple[int, int] | None = None  # the patch grid for "tokens"


def create_backbone(name: str, image_size: int, pretrained_path: str | Path | None = None,
                    output_stride: int = 32) -> tuple[nn.Module, BackboneInfo]:
    """Build timm model `name` without its head or pooling; load local weights if given.

    output_stride 16 dilates the last stage instead of striding it (same weights, a map twice as fine).
    """
    if not isinstance(name, str) or not timm.is_model(name):
        raise ModelConfigError(f"unknown backbone {name!r}; use a timm model name such as 'resnet18'")
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 16:
        raise ModelConfigError(f"image_size must be an integer of at least 16 pixels, not {image_size!r}")
    kwargs: dict = {"pretrained": False, "num_classes": 0, "global_pool": ""}
    if output_stride != 32:
        kwargs["output_stride"] = output_stride
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is not None and cfg.fixed_input_size:
        kwargs["img_size"] = image_size
    try:
        model = timm.create_model(name, **kwargs)
    except (TypeError, ValueError, AssertionError, NotImplementedError) as e:
        raise ModelConfigError(f"backbone {name!r} cannot be built at {image_size} px: {e}") from None
    info = describe_backbone(model, name, image_size)
    if pretrained_path is not None:
        load_backbone_weights(model, pretrained_path)
    return model, info


class BackboneSplit:
    """A CNN backbone cut after its last stride-16 stage: `trunk` up to there, `rest` from there to the end.

    Both only call the backbone's own modules (no copies, no new tensor names), so a model
    trained with one target layer loads into the other. Known layouts: timm's EfficientNet
    family (conv_stem, bn1, blocks, conv_head, bn2) and ResNets (conv1 ... layer4).
    """

    def __init__(self, model: nn.Module, name: str, reduction: int = 16) -> None:
        info = getattr(model, "feature_info", None)
        stages = [f["module"] for f in (info or []) if f.get("reduction") == reduction]
        if hasattr(model, "blocks") and hasattr(model, "conv_head") and stages and stages[0].startswith("blocks."):
            cut = max(int(m.split(".")[1]) for m in stages if m.startswith("blocks.")) + 1
            self._trunk = [model.conv_stem, model.bn1, *model.blocks[:cut]]
            self._rest = [*model.blocks[cut:], model.conv_head, model.bn2]
        elif all(hasattr(model, n) for n in ("conv1", "layer3", "layer4")) and "layer3" in stages:
            self._trunk = [model.conv1, model.bn1, model.act1, model.maxpool, model.layer1, model.layer2, model.layer3]
            self._rest = [model.layer4]
        else:
            raise ModelConfigError(f"backbone {name!r}: a stride-{reduction} CAM layer is available for EfficientNet "
                                   f"and ResNet backbones only")

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        for m in self._trunk:
            x = m(x)
        return x

    def rest(self, x: torch.Tensor) -> torch.Tensor:
        for m in self._rest:
            x = m(x)
        return x


def describe_backbone(model: nn.Module, name: str, image_size: int) -> BackboneInfo:
    """Work out the feature layout of a timm model, refusing layouts the heads cannot read."""
    patch_embed = getattr(model, "patch_embed", None)
    if hasattr(model, "num_prefix_tokens") and hasattr(patch_embed, "grid_size"):
        patch = tuple(patch_embed.patch_size)
        if image_size % patch[0] or image_size % patch[1]:
            raise ModelConfigError(f"backbone {name!r}: image_size {image_size} is not a multiple of its patch size {patch[0]}")
        return BackboneInfo("tokens", int(model.num_features), int(model.num_prefix_tokens), tuple(patch_embed.grid_size))
    fmt = getattr(model, "output_fmt", "NCHW")
    fmt = str(getattr(fmt, "value", fmt))
    if fmt != "NCHW":
        raise ModelConfigError(f"backbone {name!r} gives {fmt} features; only CNN (NCHW) and ViT token backbones are supported")
    return BackboneInfo("map", int(model.num_features))


def tokens_to_map(tokens: torch.Tensor, info: BackboneInfo) -> torch.Tensor:
    """(B, N, C) ViT tokens -> (B, C, h, w) patch map, dropping the prefix tokens; differentiable."""
    patches = tokens[:, info.num_prefix_tokens :]
    b, n, c = patches.shape
    h, w = info.grid if info.grid else (0, 0)
    if h * w != n:
        h = w = math.isqrt(n)
        if h * w != n:
            raise ValueError(f"{n} patch tokens do not form a square grid")
    return patches.transpose(1, 2).reshape(b, c, h, w)


def as_feature_map(feats: torch.Tensor, info: BackboneInfo) -> torch.Tensor:
    """Backbone output in (B, C, h, w) form, whatever its layout."""
    return tokens_to_map(feats, info) if info.layout == "tokens" else feats


def pool_features(feats: torch.Tensor, info: BackboneInfo) -> torch.Tensor:
    """Average the spatial cells (CNN) or the patch tokens (ViT) into (B, C)."""
    if info.layout == "tokens":
        return feats[:, info.num_prefix_tokens :].mean(dim=1)
    return feats.mean(dim=(2, 3))


def summarize_keys(keys: Iterable[str], limit: int = 3) -> str:
    """'a, b, c and 4 more': a readable list of tensor names."""
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return f"{shown} and {len(keys) - limit} more" if len(keys) > limit else shown


def state_dict_problems(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> list[str]:
    """Missing, unexpected and wrongly shaped tensors of `given` against `expected`."""
    problems = []
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    if missing:
        problems.append(f"{len(missing)} missing tensors ({summarize_keys(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors ({summarize_keys(unexpected)})")
    if shapes:
        problems.append(f"{len(shapes)} tensors of the wrong shape ({summarize_keys(shapes)})")
    return problems


def cast_like(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`given` with floating tensors cast to the dtype the model holds (fp16 storage -> fp32)."""
    out = {}
    for k, v in given.items():
        target = expected[k].dtype
        out[k] = v.to(target) if v.is_floating_point() and target != v.dtype else v
    return out


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(f"{n}." for n in names)


def load_backbone_weights(model: nn.Module, path: str | Path) -> None:
    """Load a local .safetensors file into a headless backbone, strict on every tensor.

    Accepts a plain timm state dict (its classifier tensors are ignored, the backbone has
    no head) or a whole model's state dict whose backbone tensors start with 'backbone.'.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelConfigError(f"backbone weights {p}: no such file")
    try:
        tensors = safetensors.torch.load_file(str(p))
    except (safetensors.SafetensorError, OSError) as e:
        raise ModelConfigError(f"backbone weights {p}: not a readable safetensors file ({e})") from None
    if any(k.startswith(BACKBONE_PREFIX) for k in tensors):
        tensors = {k[len(BACKBONE_PREFIX) :]: v for k, v in tensors.items() if k.startswith(BACKBONE_PREFIX)}
    own = model.state_dict()
    head = _classifier_prefixes(model)
    tensors = {k: v for k, v in tensors.items() if k in own or not (head and k.startswith(head))}
    problems = state_dict_problems(own, tensors)
    if problems:
        raise ModelConfigError(f"backbone weights {p} do not fit this backbone: {'; '.join(problems)}")
    model.load_state_dict(cast_like(own, tensors), strict=True)
