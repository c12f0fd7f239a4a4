"""The image-only teacher: a Student-shaped model in the teacher role (KDViT: a big ViT teaches a small one).

It takes (images, sub-labels, mask) like every teacher so the same training loop,
evaluation and distillation serve it, and ignores the sub-labels. It is also the
image-only unimodal baseline beside the sub-label MLP and the fused teachers. Besides
the Student's keys its output carries `feature_map`, the (B, C, h, w) map that token
and attention distillation read from an image-only teacher.
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.models.checks import check_sublabel_ranges
from engine.models.registry import register_model
from engine.models.student import Student
from engine.schema import NUM_GRADES


class ImageTeacher(Student):
    """Backbone -> pooled features -> grade logits; no sub-label heads, sub-label inputs ignored."""

    def __init__(
        self,
        backbone: str = "resnet18",
        num_grades: int = NUM_GRADES,
        sublabel_ranges: list[list[int]] | None = None,
        image_size: int = 224,
        drop_rate: float = 0.0,
        pretrained_path: str | Path | None = None,
    ) -> None:
        ranges = check_sublabel_ranges([] if sublabel_ranges is None else sublabel_ranges)
        super().__init__(backbone, num_grades, None, image_size, drop_rate, pretrained_path)
        self.arch = "teacher_image"
        self.config["sublabel_ranges"] = ranges  # kept so the card's schema check still applies
        self.dim = self.feature_dim  # the width of pre_logits, which feature distillation matches

    def forward_head(self, feats: torch.Tensor, sublabels: torch.Tensor | None = None,
                     mask: torch.Tensor | None = None) -> dict:
        """The Student's head on `feats`; `sublabels` and `mask` are accepted and ignored."""
        out = super().forward_head(feats)
        out["feature_map"] = self.cam_activations(feats)
        return out

    def forward(self, x: torch.Tensor, sublabels: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> dict:
        return self.forward_head(self.forward_features(x))


@register_model("teacher_image")
def teacher_image(**cfg) -> ImageTeacher:
    return ImageTeacher(**cfg)
