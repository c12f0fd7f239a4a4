"""Tiny tensors, configs and command-line flags shared by the model and distillation tests."""

from __future__ import annotations

import torch

from engine.models import CoAttentionTeacher, create_model
from engine.schema import DEFAULT_SCHEMA, NUM_GRADES

RANGES = [[s.minimum, s.maximum] for s in DEFAULT_SCHEMA.sublabels]
MINS = [lo for lo, _ in RANGES]
TINY = dict(backbone="resnet18", image_size=32, sublabel_ranges=RANGES, dim=32, depth=1, heads=2)
STATS = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
# The CLI runs only check wiring, so they use timm's small resnet10t backbone.
FAST = ["--epochs", "1", "--image-size", "64", "--batch-size", "16", "--device", "cpu", "--progress", "json",
        "--arch", "resnet10t"]


def images(size: int = 32, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def subs(batch: int = 2, high: bool = True) -> torch.Tensor:
    return torch.tensor([[hi if high else lo for lo, hi in RANGES]] * batch)


def coattn(layout: str = "grid", **extra) -> CoAttentionTeacher:
    torch.manual_seed(0)
    return create_model("teacher_coattn", **TINY, token_layout=layout, **extra)


def batch_for(n: int = 2) -> dict:
    return {"grade": torch.arange(n) % NUM_GRADES, "sublabels": subs(n), "sub_mask": torch.ones(n, 6, dtype=torch.bool)}
