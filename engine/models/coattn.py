"""The co-attention fusion teacher: an image stream and a sub-label stream that swap keys and values.

Each stream keeps its own tokens and its own CLS. In every block, first each stream's
queries attend to the OTHER stream's keys/values (cross-attention, both directions
computed from the block's input states), then each stream runs its own self-attention
and MLP, as in ViLBERT's co-attentional layer; all sub-layers are pre-norm with
residuals. The grade head reads the average of the two final CLS states, so
`pre_logits` keeps the width `dim` that feature distillation expects.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.fusion import FusionBase
from engine.models.registry import register_model
from engine.models.tokens import embedding


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


class CoAttentionTeacher(FusionBase):
    """[CLS_i, image tokens] and [CLS_s, sub-label tokens] through co-attention blocks -> grade from both CLS."""

    ARCH = "teacher_coattn"

    def __init__(self, **cfg) -> None:
        """The options are FusionBase's (backbone, image_size, token_layout, dim, depth, heads, ...)."""
        super().__init__(**cfg)
        c = self.config
        self.image_cls = embedding(1, 1, c["dim"])
        self.sub_cls = embedding(1, 1, c["dim"])
        self.blocks = nn.ModuleList(
            CoAttentionBlock(c["dim"], c["heads"], c["mlp_ratio"], c["dropout"]) for _ in range(c["depth"])
        )
        self.image_norm = nn.LayerNorm(c["dim"])
        self.sub_norm = nn.LayerNorm(c["dim"])
        self.head = nn.Linear(c["dim"], c["num_grades"])

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


@register_model("teacher_coattn")
def teacher_coattn(**cfg) -> CoAttentionTeacher:
    return CoAttentionTeacher(**cfg)
