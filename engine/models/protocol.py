"""The model contract: what the grader, the trainer and distillation rely on in every registered model.

Grad-CAM in one pass needs the forward split in two: `forward_features` (the backbone,
run once without a graph) and `forward_head` (everything after, run with autograd on a
leaf), plus `cam_activations`, the (B, C, h, w) map the CAM weighs. `arch` and `config`
let a card rebuild the model (`create_model(arch, **config)`). A model loaded from a
bundle also carries `preprocess_cfg` (engine.preprocess), as timm models carry
`pretrained_cfg`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class GradingModel(Protocol):
    """A student (image only) or a teacher (image + sub-labels; the head takes them too)."""

    arch: str  # the registry name
    config: dict  # JSON-safe; create_model(arch, **config) rebuilds the architecture
    feature_dim: int  # channels of the backbone's map

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone: a (B, C, h, w) map or (B, N, C) ViT tokens."""
        ...

    def forward_head(self, feats: torch.Tensor, *sublabel_inputs: torch.Tensor | None) -> dict:
        """Everything after the backbone: {"logits", "pre_logits", ...}; a teacher also takes (sublabels, mask)."""
        ...

    def cam_activations(self, feats: torch.Tensor) -> torch.Tensor:
        """`feats` (or a gradient of the same shape) as the (B, C, h, w) map Grad-CAM weighs."""
        ...
