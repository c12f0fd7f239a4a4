"""The preprocessing a model expects, read from its card and attached to it at load.

As timm attaches `pretrained_cfg` to a model, `load_bundle` attaches a `PreprocessConfig`
(input size, normalisation, crop) as `model.preprocess_cfg`, and
`engine.data.transforms.build_transform` turns it into the one function from a photograph
to that model's input. `crop` names the part of the photograph the model sees: every
bundle so far sees the centred square of the short side (CENTRE), and a card without a
crop field means exactly that, so a later lens crop cannot change an old bundle's input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import EngineError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CENTRE = "centre"  # the centred square of the short side
CROPS = (CENTRE,)


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

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise PreprocessError(f"crop {self.crop!r} is not one this app applies ({', '.join(CROPS)})")
        if not isinstance(self.size, int) or self.size < 1 or len(self.mean) != len(self.std):
            raise PreprocessError(f"a preprocessing config needs a positive size and one std per mean, not {self}")

    @classmethod
    def from_card(cls, card: Any) -> PreprocessConfig:
        """The config a ModelCard describes (cards written before `crop` existed mean CENTRE)."""
        return cls(int(card.image_size), tuple(card.mean), tuple(card.std), getattr(card, "crop", CENTRE) or CENTRE)

    def crop_box(self, height: int, width: int) -> tuple[int, int, int]:
        """(x0, y0, side) of the square of a height x width photograph that the model sees."""
        return centre_box(height, width)
