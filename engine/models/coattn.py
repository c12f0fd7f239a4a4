"""The co-attention fusion teacher: an image stream and a sub-label stream that swap keys and values.

Each stream keeps its own tokens and its own CLS. In every block, first each stream's
queries attend to the OTHER stream's keys/values (cross-attention, both directions
computed from the block's input states), then each stream runs its own self-attention
and MLP, as in ViLBERT's co-attentional layer; all sub-layers are pre-norm with
residuals. The grade head reads the average of the two final CLS states, so
`pre_logits` keeps the width `dim` that feature distillation expects.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from engine.models.backbone import as_feature_map
from engine.models.registry import register_model
from engine.models.teacher import FusionTeacher, _embedding, init_fusion_inputs
from engine.schema import NUM_GRADES


class _Mlp(nn.Sequential):
    def __init__(self, dim: int, mlp_ratio: float, dropout: float) -> None:
        hidden = int(dim * mlp_ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout))


class SelfBlock(nn.Module):
    """Pre-norm self-attention + MLP; can also return the head-averaged attention weights."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, mlp_ratio, dropout)

    def forward(self, x: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.norm1(x)
        attended, weights = self.attn(h, h, h, need_weights=need_weights)
        x = x + self.drop(attended)
        return x + self.mlp(self.norm2(x)), weights


class CrossAttention(nn.Module):
    """Pre-norm cross-attention: queries from one stream, keys and values from the other."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(other)
        attended, _ = self.attn(self.norm_q(x), kv, kv, need_weights=False)
        return x + self.drop(attended)


class CoAttentionBlock(nn.Module):
    """One exchange: image queries read sub-label keys/values and vice versa, then each stream's own block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.image_cross = CrossAttention(dim, heads, dropout)
        self.sub_cross = CrossAttention(dim, heads, dropout)
        self.image_self = SelfBlock(dim, heads, mlp_ratio, dropout)
        self.sub_self = SelfBlock(dim, heads, mlp_ratio, dropout)

    def forward(self, image: torch.Tensor, subs: torch.Tensor,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(image states, sub-label states, the image stream's self-attention weights when asked)."""
        image, subs = self.image_cross(image, subs), self.sub_cross(subs, image)
        image, weights = self.image_self(image, need_weights)
        subs, _ = self.sub_self(subs)
        return image, subs, weights


class CoAttentionTeacher(nn.Module):
    """[CLS_i, image tokens] and [CLS_s, sub-label tokens] through co-attention blocks -> grade from both CLS."""

    # The same blank-cell handling and training-time sub-label dropout as the concat teacher.
    known_mask = FusionTeacher.known_mask

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
        init_fusion_inputs(
            self, "teacher_coattn", backbone=backbone, num_grades=num_grades, sublabel_ranges=sublabel_ranges,
            image_size=image_size, token_layout=token_layout, grid=grid, dim=dim, depth=depth, heads=heads,
            mlp_ratio=mlp_ratio, dropout=dropout, sub_dropout=sub_dropout, pretrained_path=pretrained_path,
        )
        self.image_cls = _embedding(1, 1, dim)
        self.sub_cls = _embedding(1, 1, dim)
        mlp_ratio = self.config["mlp_ratio"]
        self.blocks = nn.ModuleList(CoAttentionBlock(dim, heads, mlp_ratio, self.config["dropout"]) for _ in range(depth))
        self.image_norm = nn.LayerNorm(dim)
        self.sub_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_grades)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone feature map (B, C, h, w); ViT tokens are reshaped to their patch grid."""
        return as_feature_map(self.backbone.forward_features(x), self.info)

    def forward_head(self, feats: torch.Tensor, sublabels: torch.Tensor | None = None,
                     mask: torch.Tensor | None = None, return_attention: bool = False) -> dict:
        """Fuse the two streams; with return_attention, also the last block's CLS -> image-token attention."""
        values, known = self.known_mask(feats, sublabels, mask)
        b = feats.shape[0]
        image = torch.cat([self.image_cls.expand(b, -1, -1), self.image_tokens(feats)], dim=1)
        subs = torch.cat([self.sub_cls.expand(b, -1, -1), self.sub_tokens(values, known)], dim=1)
        weights = None
        for i, block in enumerate(self.blocks):
            image, subs, weights = block(image, subs, need_weights=return_attention and i == len(self.blocks) - 1)
        image, subs = self.image_norm(image), self.sub_norm(subs)
        pre = 0.5 * (image[:, 0] + subs[:, 0])
        out = {
            "logits": self.head(pre),
            "pre_logits": pre,
            "tokens": torch.cat([image, subs], dim=1),
            "image_tokens": image[:, 1:],
        }
        if return_attention:
            out["cls_attention"] = weights[:, 0, 1:]
        return out

    def forward(self, x: torch.Tensor, sublabels: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                return_attention: bool = False) -> dict:
        return self.forward_head(self.forward_features(x), sublabels, mask, return_attention)

    def cam_activations(self, feats: torch.Tensor) -> torch.Tensor:
        """forward_features already gives the (B, C, h, w) map Grad-CAM weighs."""
        return feats


@register_model("teacher_coattn")
def teacher_coattn(**cfg) -> CoAttentionTeacher:
    return CoAttentionTeacher(**cfg)
