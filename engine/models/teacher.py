"""The fusion teacher: image tokens + one token per sub-label through a small transformer.

Image tokens come from the backbone's feature map (a pooled grid, or TKD-Net's centre
and periphery zones); each sub-label becomes its own token the FT-Transformer way
(value * W_k + b_k), with a learned "missing" token for a blank cell. Random
sub-label dropout while training keeps a half-filled form usable at inference.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.backbone import as_feature_map, create_backbone
from engine.models.registry import ModelConfigError, register_model
from engine.models.student import check_positive_int, check_rate, check_sublabel_ranges
from engine.schema import NUM_GRADES

TOKEN_LAYOUTS = ("grid", "zones")
# On a 4x4 pooled map: the inner 2x2 cells are the centre zone; each quadrant's three
# outer cells average into one periphery token (4 centre + 4 periphery, as TKD-Net).
_CENTRE_CELLS = (5, 6, 9, 10)
_PERIPHERY_CELLS = ((0, 1, 4), (2, 3, 7), (8, 12, 13), (11, 14, 15))


def _embedding(*shape: int) -> nn.Parameter:
    return nn.Parameter(nn.init.trunc_normal_(torch.empty(*shape), std=0.02))


class GridTokens(nn.Module):
    """Pool the map to grid x grid; each cell is one token with a learned position."""

    def __init__(self, in_dim: int, dim: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.proj = nn.Linear(in_dim, dim)
        self.pos = _embedding(grid * grid, dim)

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        cells = F.adaptive_avg_pool2d(feats, self.grid).flatten(2).transpose(1, 2)
        return self.proj(cells) + self.pos


class ZoneTokens(nn.Module):
    """TKD-Net zones: 4 centre tokens and 4 periphery tokens, each zone with its own projection."""

    num_tokens = len(_CENTRE_CELLS) + len(_PERIPHERY_CELLS)

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.centre_proj = nn.Linear(in_dim, dim)
        self.periphery_proj = nn.Linear(in_dim, dim)
        self.pos = _embedding(self.num_tokens, dim)
        self.register_buffer("centre_idx", torch.tensor(_CENTRE_CELLS), persistent=False)
        self.register_buffer("periphery_idx", torch.tensor(_PERIPHERY_CELLS), persistent=False)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        cells = F.adaptive_avg_pool2d(feats, 4).flatten(2).transpose(1, 2)  # (B, 16, C)
        centre = cells[:, self.centre_idx]
        periphery = cells[:, self.periphery_idx].mean(dim=2)
        return torch.cat([self.centre_proj(centre), self.periphery_proj(periphery)], dim=1) + self.pos


class SubLabelTokens(nn.Module):
    """token_k = x_k * W_k + b_k with x_k scaled to [0, 1]; a learned token where x_k is unknown."""

    def __init__(self, ranges: list[list[int]], dim: int) -> None:
        super().__init__()
        self.register_buffer("low", torch.tensor([float(lo) for lo, _ in ranges]), persistent=False)
        self.register_buffer("span", torch.tensor([float(hi - lo) for lo, hi in ranges]), persistent=False)
        self.weight = _embedding(len(ranges), dim)
        self.bias = nn.Parameter(torch.zeros(len(ranges), dim))
        self.missing = _embedding(len(ranges), dim)

    def forward(self, values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        x = ((values.to(self.low.dtype) - self.low) / self.span).unsqueeze(-1)
        tokens = x * self.weight + self.bias
        return torch.where(known.unsqueeze(-1), tokens, self.missing.expand_as(tokens))


def init_fusion_inputs(model: nn.Module, arch: str, pretrained_path: str | Path | None = None, **cfg) -> None:
    """What every fusion teacher sets up alike: checked config, backbone, image and sub-label tokens."""
    model.arch = arch
    model.config = FusionTeacher._check_config(**cfg)
    model.backbone, model.info = create_backbone(cfg["backbone"], cfg["image_size"], pretrained_path)
    model.feature_dim = model.info.feature_dim
    model.num_prefix_tokens = 0  # forward_features already gives a map
    model.dim = cfg["dim"]
    model.num_grades = cfg["num_grades"]
    model.num_sublabels = len(model.config["sublabel_ranges"])
    model.sub_dropout = model.config["sub_dropout"]
    if cfg["token_layout"] == "grid":
        model.image_tokens = GridTokens(model.feature_dim, model.dim, cfg["grid"])
    else:
        model.image_tokens = ZoneTokens(model.feature_dim, model.dim)
    model.sub_tokens = SubLabelTokens(model.config["sublabel_ranges"], model.dim)


class FusionTeacher(nn.Module):
    """[CLS, image tokens, sub-label tokens] -> pre-norm transformer -> grade logits from CLS."""

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
            self, "teacher_concat", backbone=backbone, num_grades=num_grades, sublabel_ranges=sublabel_ranges,
            image_size=image_size, token_layout=token_layout, grid=grid, dim=dim, depth=depth, heads=heads,
            mlp_ratio=mlp_ratio, dropout=dropout, sub_dropout=sub_dropout, pretrained_path=pretrained_path,
        )
        self.cls_token = _embedding(1, 1, dim)
        self.type_embed = _embedding(2, dim)  # 0: image token, 1: sub-label token
        layer = nn.TransformerEncoderLayer(
            dim, heads, int(dim * mlp_ratio), dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_grades)

    @staticmethod
    def _check_config(**cfg) -> dict:
        cfg["sublabel_ranges"] = check_sublabel_ranges(
            [] if cfg["sublabel_ranges"] is None else cfg["sublabel_ranges"], required=True
        )
        if cfg["token_layout"] not in TOKEN_LAYOUTS:
            raise ModelConfigError(f"token_layout must be one of {', '.join(TOKEN_LAYOUTS)}, not {cfg['token_layout']!r}")
        for key, low in (("num_grades", 2), ("grid", 1), ("dim", 1), ("depth", 1), ("heads", 1)):
            check_positive_int(key, cfg[key], low)
        if cfg["dim"] % cfg["heads"]:
            raise ModelConfigError(f"dim {cfg['dim']} must be a multiple of heads {cfg['heads']}")
        mlp = cfg["mlp_ratio"]
        if not isinstance(mlp, (int, float)) or isinstance(mlp, bool) or not mlp > 0:
            raise ModelConfigError(f"mlp_ratio must be a positive number, not {mlp!r}")
        cfg["mlp_ratio"] = float(mlp)
        cfg["dropout"] = check_rate("dropout", cfg["dropout"])
        cfg["sub_dropout"] = check_rate("sub_dropout", cfg["sub_dropout"])
        return cfg

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone feature map (B, C, h, w); ViT tokens are reshaped to their patch grid."""
        return as_feature_map(self.backbone.forward_features(x), self.info)

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

    def cam_activations(self, feats: torch.Tensor) -> torch.Tensor:
        """forward_features already gives the (B, C, h, w) map Grad-CAM weighs."""
        return feats


@register_model("teacher_concat")
def teacher_concat(**cfg) -> FusionTeacher:
    return FusionTeacher(**cfg)
