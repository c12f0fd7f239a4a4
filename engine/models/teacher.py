"""The concat fusion teacher: image tokens + one token per sub-label through a small transformer.

Image tokens come from the backbone's feature map (a pooled grid, or TKD-Net's centre
and periphery zones); each sub-label becomes its own token the FT-Transformer way
(value * W_k + b_k), with a learned "missing" token for a blank cell. Random
sub-label dropout while training keeps a half-filled form usable at inference.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.fusion import FusionBase
from engine.models.registry import register_model
from engine.models.tokens import embedding


class FusionTeacher(FusionBase):
    """[CLS, image tokens, sub-label tokens] -> pre-norm transformer -> grade logits from CLS."""

    ARCH = "teacher_concat"

    def __init__(self, **cfg) -> None:
        """The options are FusionBase's (backbone, image_size, token_layout, dim, depth, heads, ...)."""
        super().__init__(**cfg)
        c = self.config
        self.cls_token = embedding(1, 1, c["dim"])
        self.type_embed = embedding(2, c["dim"])  # 0: image token, 1: sub-label token
        layer = nn.TransformerEncoderLayer(
            c["dim"], c["heads"], int(c["dim"] * c["mlp_ratio"]), c["dropout"], activation="gelu", batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, c["depth"], enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c["dim"])
        self.head = nn.Linear(c["dim"], c["num_grades"])

    def forward_head(
        self, feats: torch.Tensor, sublabels: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> dict:
        """Fuse image tokens from `feats` with the sub-labels (blank where mask is False)."""
        values, known = self.known_mask(feats, sublabels, mask)
        image = self.image_tokens(feats) + self.type_embed[0]
        subs = self.sub_tokens(values, known) + self.type_embed[1]
        cls = self.cls_token.expand(feats.shape[0], -1, -1)
        states = self.norm(self.encoder(torch.cat([cls, image, subs], dim=1)))
        pre = states[:, 0]
        return {
            "logits": self.head(pre),
            "pre_logits": pre,
            "tokens": states,
            "image_tokens": states[:, 1 : 1 + image.shape[1]],
        }

    def forward(self, x: torch.Tensor, sublabels: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> dict:
        return self.forward_head(self.forward_features(x), sublabels, mask)


@register_model("teacher_concat")
def teacher_concat(**cfg) -> FusionTeacher:
    return FusionTeacher(**cfg)
