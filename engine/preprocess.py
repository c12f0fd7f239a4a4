"""The preprocessing a model expects, read from its card and attached to it at load.

As timm attaches `pretrained_cfg` to a model, `load_bundle` attaches a `PreprocessConfig`
(input size, normalisation, crop) as `model.preprocess_cfg`, and
`engine.data.transforms.build_transform` turns it into the one function from a photograph
to that model's input. `crop` names the part of the photograph the model sees: bundles
written before the input gate see the centred square of the short side (CENTRE), and a
card without a crop field means exactly that, so the lens crop cannot change an old
bundle's input. LENS is the square around the found lens disc, `margin` radii to each
side of its centre (engine.roi.crop_to_lens); where no lens is found it falls back to the
centred square, in training and in grading alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.choices import CENTRE, CROPS, LENS
from engine.errors import EngineError
from engine.roi import LENS_MARGIN, Circle, lens_box

__all__ = ["CENTRE", "CROPS", "IMAGENET_MEAN", "IMAGENET_STD", "LENS", "LENS_MARGIN", "PreprocessConfig",
           "PreprocessError", "centre_box"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MARGIN_RANGE = (1.0, 3.0)  # a lens crop's margin: at least the whole disc, at most a wide ring of iris


class PreprocessError(EngineError):
    """A preprocessing config this version cannot apply (an unknown crop, a bad size)."""


def centre_box(height: int, width: int) -> tuple[int, int, int]:
    """(x0, y0, side) of the centred square of the short side."""
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side


@dataclass(frozen=True)
class PreprocessConfig:
    """Input size, normalisation and crop of one model: all a photograph needs to become its input."""

    size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    crop: str = CENTRE
    margin: float = LENS_MARGIN  # LENS only: the crop's half side in disc radii

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise PreprocessError(f"crop {self.crop!r} is not one this app applies ({', '.join(CROPS)})")
        if not isinstance(self.size, int) or self.size < 1 or len(self.mean) != len(self.std):
            raise PreprocessError(f"a preprocessing config needs a positive size and one std per mean, not {self}")
        lo, hi = MARGIN_RANGE
        if not (isinstance(self.margin, (int, float)) and math.isfinite(self.margin) and lo <= self.margin <= hi):
            raise PreprocessError(f"the lens crop's margin must be {lo:g}-{hi:g} radii, not {self.margin!r}")

    @classmethod
    def from_card(cls, card: Any) -> PreprocessConfig:
        """The config a ModelCard describes (cards written before `crop` existed mean CENTRE)."""
        margin = getattr(card, "crop_margin", None)
        return cls(int(card.image_size), tuple(card.mean), tuple(card.std), getattr(card, "crop", CENTRE) or CENTRE,
                   LENS_MARGIN if margin is None else float(margin))

    @property
    def uses_lens(self) -> bool:
        """True when the model's input is cut around the lens, so grading needs the lens circle first."""
        return self.crop == LENS

    def crop_box(self, height: int, width: int, circle: Circle | None = None) -> tuple[int, int, int]:
        """(x0, y0, side) of the square of a height x width photograph that the model sees.

        LENS with a circle: the square around it (it may pass the photograph's edges, where
        the input is black); CENTRE, or LENS without a circle: the centred square.
        """
        if self.crop == LENS and circle is not None:
            return lens_box(circle, self.margin)
        return centre_box(height, width)
