"""Tokens a fusion teacher reads: image tokens from a feature map (a grid, or TKD-Net's zones) and sub-label tokens.

The zone cells are public: distillation lays a student's map out in the same cells.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# On a 4x4 pooled map: the inner 2x2 cells are the centre zone; each quadrant's three
# outer cells average into one periphery token (4 centre + 4 periphery, as TKD-Net).
CENTRE_CELLS = (5, 6, 9, 10)
PERIPHERY_CELLS = ((0, 1, 4), (2, 3, 7), (8, 12, 13), (11, 14, 15))


def embedding(*shape: int) -> nn.Parameter:
    """A learned embedding, truncated-normal initialised (std 0.02) as in ViTs."""
    return nn.Parameter(nn.init.trunc_normal_(torch.empty(*shape), std=0.02))


class GridTokens(nn.Module):
    """Pool the map to grid x grid; each cell is one token with a learned position."""

    def __init__(self, in_dim: int, dim: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.proj = nn.Linear(in_dim, dim)
        self.pos = embedding(grid * grid, dim)

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        cells = F.adaptive_avg_pool2d(feats, self.grid).flatten(2).transpose(1, 2)
        return self.proj(cells) + self.pos


class ZoneTokens(nn.Module):
    """TKD-Net zones: 4 centre tokens and 4 periphery tokens, each zone with its own projection."""

    num_tokens = len(CENTRE_CELLS) + len(PERIPHERY_CELLS)

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.centre_proj = nn.Linear(in_dim, dim)
        self.periphery_proj = nn.Linear(in_dim, dim)
        self.pos = embedding(self.num_tokens, dim)
        self.register_buffer("centre_idx", torch.tensor(CENTRE_CELLS), persistent=False)
        self.register_buffer("periphery_idx", torch.tensor(PERIPHERY_CELLS), persistent=False)

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
        self.weight = embedding(len(ranges), dim)
        self.bias = nn.Parameter(torch.zeros(len(ranges), dim))
        self.missing = embedding(len(ranges), dim)

    def forward(self, values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        x = ((values.to(self.low.dtype) - self.low) / self.span).unsqueeze(-1)
        tokens = x * self.weight + self.bias
        return torch.where(known.unsqueeze(-1), tokens, self.missing.expand_as(tokens))
