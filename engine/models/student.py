"""The image-only student: a timm backbone, a grade head and optional sub-label heads.

The head is deliberately nothing but pool + linear layers, so the grader can run the
backbone once without grad and take Grad-CAM gradients w.r.t. its features alone.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from engine.models.backbone import as_feature_map, create_backbone, pool_features
from engine.models.checks import check_positive_int, check_rate, check_sublabel_ranges
from engine.models.registry import register_model
from engine.schema import NUM_GRADES


class Student(nn.Module):
    """Backbone -> pooled features -> grade logits (+ one classifier per sub-label)."""

    def __init__(
        self,
        backbone: str = "resnet18",
        num_grades: int = NUM_GRADES,
        sublabel_ranges: list[list[int]] | None = None,
        image_size: int = 224,
        drop_rate: float = 0.0,
        pretrained_path: str | Path | None = None,
    ) -> None:
        super().__init__()
        ranges = check_sublabel_ranges([] if sublabel_ranges is None else sublabel_ranges)
        check_positive_int("num_grades", num_grades, 2)
        self.arch = "student"
        self.config = {
            "backbone": backbone,
            "num_grades": num_grades,
            "sublabel_ranges": ranges,
            "image_size": image_size,
            "drop_rate": check_rate("drop_rate", drop_rate),
        }
        self.backbone, self.info = create_backbone(backbone, image_size, pretrained_path)
        self.feature_dim = self.info.feature_dim
        self.num_prefix_tokens = self.info.num_prefix_tokens
        self.num_grades = num_grades
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.feature_dim, num_grades)
        self.sub_heads = nn.ModuleList(nn.Linear(self.feature_dim, hi - lo + 1) for lo, hi in ranges)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """timm features: (B, C, h, w) for CNNs, (B, N, C) tokens for ViTs."""
        return self.backbone.forward_features(x)

    def forward_head(self, feats: torch.Tensor) -> dict:
        """Pool + linear heads; the only computation between features and logits."""
        pre = pool_features(feats, self.info)
        dropped = self.head_drop(pre)
        return {
            "logits": self.head(dropped),
            "sub_logits": [h(dropped) for h in self.sub_heads],
            "pre_logits": pre,
        }

    def forward(self, x: torch.Tensor) -> dict:
        return self.forward_head(self.forward_features(x))

    def cam_activations(self, feats: torch.Tensor) -> torch.Tensor:
        """The (B, C, h, w) map Grad-CAM weighs; applies equally to gradients of feats."""
        return as_feature_map(feats, self.info)


@register_model("student")
def student(**cfg) -> Student:
    return Student(**cfg)
