"""The image-only student: a timm backbone, a grade head and optional sub-label heads.

The head is deliberately nothing but pool + linear layers, so the grader can run the
backbone once without grad and take Grad-CAM gradients w.r.t. its features alone.
`cam_layer="stride16"` moves that cut (the CAM's target layer) to the last stride-16
stage: the heat map is twice as fine, and the backbone's last stage becomes part of
the head, so the CAM's backward runs through it (dearer). `output_stride=16` instead
dilates the last stage: a finer final map at the cost of a slower forward.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from engine.models.backbone import BackboneSplit, as_feature_map, create_backbone, pool_features
from engine.models.checks import check_positive_int, check_rate, check_sublabel_ranges
from engine.models.registry import ModelConfigError, register_model
from engine.schema import NUM_GRADES

CAM_LAYERS = ("final", "stride16")


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
        cam_layer: str = "final",
        output_stride: int = 32,
    ) -> None:
        super().__init__()
        ranges = check_sublabel_ranges([] if sublabel_ranges is None else sublabel_ranges)
        check_positive_int("num_grades", num_grades, 2)
        if cam_layer not in CAM_LAYERS:
            raise ModelConfigError(f"cam_layer must be one of {', '.join(CAM_LAYERS)}, not {cam_layer!r}")
        if output_stride not in (16, 32):
            raise ModelConfigError(f"output_stride must be 16 or 32, not {output_stride!r}")
        self.arch = "student"
        self.config = {
            "backbone": backbone,
            "num_grades": num_grades,
            "sublabel_ranges": ranges,
            "image_size": image_size,
            "drop_rate": check_rate("drop_rate", drop_rate),
        }
        if cam_layer != "final" or output_stride != 32:  # only non-defaults, so older cards read the same
            self.config.update(cam_layer=cam_layer, output_stride=output_stride)
        self.backbone, self.info = create_backbone(backbone, image_size, pretrained_path, output_stride)
        self.split = BackboneSplit(self.backbone, backbone) if cam_layer == "stride16" else None
        self.feature_dim = self.info.feature_dim
        self.num_prefix_tokens = self.info.num_prefix_tokens
        self.num_grades = num_grades
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.feature_dim, num_grades)
        self.sub_heads = nn.ModuleList(nn.Linear(self.feature_dim, hi - lo + 1) for lo, hi in ranges)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The CAM's target layer: timm features ((B, C, h, w) maps, (B, N, C) ViT tokens), or the stride-16 map."""
        if self.split is not None:
            return self.split.trunk(x)
        return self.backbone.forward_features(x)

    def forward_head(self, feats: torch.Tensor) -> dict:
        """Everything between the CAM's target layer and the logits: pool + linear heads (and the last stage)."""
        final = self.split.rest(feats) if self.split is not None else feats
        pre = pool_features(final, self.info)
        dropped = self.head_drop(pre)
        out = {
            "logits": self.head(dropped),
            "sub_logits": [h(dropped) for h in self.sub_heads],
            "pre_logits": pre,
        }
        if self.split is not None:
            out["feature_map"] = final  # what token and attention distillation read
        return out

    def forward(self, x: torch.Tensor) -> dict:
        return self.forward_head(self.forward_features(x))

    def cam_activations(self, feats: torch.Tensor) -> torch.Tensor:
        """The (B, C, h, w) map Grad-CAM weighs; applies equally to gradients of feats."""
        return as_feature_map(feats, self.info)


@register_model("student")
def student(**cfg) -> Student:
    return Student(**cfg)
