"""The sub-label-only baseline: an MLP over the six sub-labels, as in the seed's DNN branch.

It is registered as a teacher-shaped model (it takes images and sub-labels, and
ignores the image) so the same training loop and evaluation serve it. It answers
"how much do the sub-labels alone tell?", the unimodal row beside the fused one.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.checks import check_positive_int, check_sublabel_ranges
from engine.models.registry import register_model
from engine.schema import NUM_GRADES


class SubLabelMLP(nn.Module):
    """Scaled sub-label values (+ a known/unknown flag each) -> hidden -> hidden -> grades."""

    def __init__(self, sublabel_ranges: list[list[int]] | None = None, num_grades: int = NUM_GRADES,
                 hidden: int = 64, image_size: int = 64) -> None:
        super().__init__()
        ranges = check_sublabel_ranges(sublabel_ranges or [], required=True)
        self.arch = "teacher_mlp"
        self.config = {"sublabel_ranges": ranges, "num_grades": num_grades,
                       "hidden": check_positive_int("hidden", hidden), "image_size": image_size}
        self.register_buffer("low", torch.tensor([float(lo) for lo, _ in ranges]), persistent=False)
        self.register_buffer("span", torch.tensor([float(hi - lo) for lo, hi in ranges]), persistent=False)
        k = len(ranges)
        self.net = nn.Sequential(nn.Linear(2 * k, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.head = nn.Linear(hidden, num_grades)
        self.feature_dim = hidden
        self.dim = hidden

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x  # the image is not used

    def forward_head(self, feats: torch.Tensor, sublabels: torch.Tensor | None = None,
                     mask: torch.Tensor | None = None) -> dict:
        b = feats.shape[0]
        if sublabels is None:
            sublabels = torch.zeros(b, len(self.low), dtype=torch.long, device=feats.device)
            mask = torch.zeros_like(sublabels, dtype=torch.bool)
        elif mask is None:
            mask = torch.ones_like(sublabels, dtype=torch.bool)
        known = mask.float()
        scaled = (sublabels.float() - self.low) / self.span * known
        hidden = self.net(torch.cat([scaled, known], dim=1))
        return {"logits": self.head(hidden), "pre_logits": hidden}

    def forward(self, x: torch.Tensor, sublabels: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> dict:
        return self.forward_head(x, sublabels, mask)

    def cam_activations(self, feats: torch.Tensor) -> torch.Tensor:
        return feats


@register_model("teacher_mlp")
def teacher_mlp(**cfg) -> SubLabelMLP:
    return SubLabelMLP(**cfg)
