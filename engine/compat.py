"""Make torchvision importable next to a CPU-only torch.

The torchvision wheel that pairs with torch 2.13 is linked against CUDA. With the
CPU torch its compiled ops (`torchvision._C`) fail to load, and torchvision's
import then dies registering fake kernels for `torchvision::nms`, an operator that
never got a schema. timm and pytorch_grad_cam import torchvision, so they die too.

`ensure_torchvision_ops()` runs before anything imports torchvision. When the
compiled ops load, it does nothing. When they don't, it declares the schemas of
the operators torchvision registers fakes for at import time, so the import goes
through. None of our code calls those detection ops.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

# Operators whose fake kernels torchvision registers unconditionally on import.
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library: torch.library.Library | None = None


def _op_exists(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


def _load_compiled_ops() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return False
    for lib in sorted(Path(spec.origin).parent.glob("_C.*")):
        if lib.suffix not in (".so", ".pyd", ".dylib"):
            continue
        try:
            torch.ops.load_library(str(lib))
            return True
        except (OSError, ImportError, RuntimeError):
            return False
    return False


def ensure_torchvision_ops() -> bool:
    """Declare the missing torchvision op schemas if needed. True when it declared them."""
    global _library
    if _library is not None or _op_exists("nms"):
        return False
    if _load_compiled_ops() and _op_exists("nms"):
        return False
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        _library.define(schema)
    return True


ensure_torchvision_ops()
