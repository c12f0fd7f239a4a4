"""What every image + sub-label fusion teacher shares: one base class.

`FusionBase` checks the config, builds the backbone, the image tokens and the sub-label
tokens, and applies the blank-cell mask and training-time sub-label dropout. A fusion
mode (concat, coattn) subclasses it, adds its own layers after `super().__init__(**cfg)`
and writes `forward_head`; it never repeats the constructor's arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from engine.models.backbone import as_feature_map, create_backbone
from engine.models.checks import check_fusion_config
from engine.models.tokens import GridTokens, SubLabelTokens, ZoneTokens
from engine.schema import NUM_GRADES


class FusionBase(nn.Module):
    """Backbone map -> image tokens, sub-labels -> tokens; subclasses fuse them in `forward_head`."""

    ARCH: ClassVar[str] = ""  # the registry name, e.g. "teacher_concat"

    def __init__(
        self,
        backbone: str = "resnet18",
        num_grades: int = NUM_GRADES,
        sublabel_ranges: list[list[int]] | None = None,
        image_size: int = 224,
        token_layout: str = "grid",
        grid: int = 3,
        dim: int = 192,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.1,
        sub_dropout: float = 0.3,
        pretrained_path: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.arch = self.ARCH
        self.config = check_fusion_config(
            backbone=backbone, num_grades=num_grades, sublabel_ranges=sublabel_ranges, image_size=image_size,
            token_layout=token_layout, grid=grid, dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio,
            dropout=dropout, sub_dropout=sub_dropout,
        )
        self.backbone, self.info = create_backbone(backbone, image_size, pretrained_path)
        self.feature_dim = self.info.feature_dim
        self.num_prefix_tokens = 0  # forward_features already gives a map
        self.dim = dim
        self.num_grades = num_grades
        self.num_sublabels = len(self.config["sublabel_ranges"])
        self.sub_dropout = self.config["sub_dropout"]
        if token_layout == "grid":
            self.image_tokens = GridTokens(self.feature_dim, dim, grid)
        else:
            self.image_tokens = ZoneTokens(self.feature_dim, dim)
        self.sub_tokens = SubLabelTokens(self.config["sublabel_ranges"], dim)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone feature map (B, C, h, w); ViT tokens are reshaped to their patch grid."""
        return as_feature_map(self.backbone.forward_features(x), self.info)

    def forward_head(self, feats: torch.Tensor, sublabels: torch.Tensor | None = None,
                     mask: torch.Tensor | None = None) -> dict:
        raise NotImplementedError

    def known_mask(
        self, feats: torch.Tensor, sublabels: torch.Tensor | None, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, known) for the sub-label tokens, with training-time sub-label dropout applied."""
        shape = (feats.shape[0], self.num_sublabels)
        if sublabels is None:
            zeros = torch.zeros(shape, device=feats.device)
            return zeros, zeros.bool()
        if tuple(sublabels.shape) != shape:
            raise ValueError(f"sublabels must have shape {shape}, not {tuple(sublabels.shape)}")
        known = torch.ones(shape, dtype=torch.bool, device=feats.device) if mask is None else mask.bool()
        if tuple(known.shape) != shape:
            raise ValueError(f"the sub-label mask must have shape {shape}, not {tuple(known.shape)}")
        if self.training and self.sub_dropout > 0:
            known = known & (torch.rand(shape, device=feats.device) >= self.sub_dropout)
        return sublabels, known

    def cam_activations(self, feats: torch.Tensor) -> torch.Tensor:
        """forward_features already gives the (B, C, h, w) map Grad-CAM weighs."""
        return feats
