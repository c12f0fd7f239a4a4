"""Per-sample image transforms in numpy/OpenCV: training augmentation and the single eval preprocessing.

`preprocess_eval` is the one door from an RGB photo to a network input; training (eval
split) and inference both call it, so they see identical pixels. Training augmentation
does all its geometry (crop, zoom, translation, rotation, flips) in one affine warp and
all its photometry (brightness, contrast, gamma, white balance) in one lookup table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from engine.preprocess import (
    CENTRE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LENS,
    LENS_MARGIN,
    PreprocessConfig,
    PreprocessError,
    centre_box,
)
from engine.roi import Circle, crop_to_lens

# Training keeps this much more resolution than the network input, so zooming in never upsamples.
TRAIN_MARGIN = 1.15


@dataclass(frozen=True)
class Augment:
    """Ranges of the training augmentation; the defaults are mild and label-preserving."""

    scale: tuple[float, float] = (0.8, 1.0)  # crop area as a share of the full square
    ratio: tuple[float, float] = (0.9, 1.0 / 0.9)  # crop aspect ratio
    translate: float = 0.05  # crop centre shift, share of the image side
    rotate: bool = True  # any angle: cortical spokes are radial, so rotation keeps the grade
    flip: bool = True  # horizontal and vertical mirror, each with p = 0.5
    brightness: float = 0.1  # additive, share of full scale
    contrast: float = 0.15  # multiplicative, 1 +- this
    gamma: tuple[float, float] = (0.85, 1.15)
    white_balance: float = 0.05  # per-channel gain, 1 +- this
    blur_p: float = 0.2
    blur_sigma: tuple[float, float] = (0.3, 1.0)  # in pixels at 224 px, scaled with the output size


def working_size(image_size: int, train: bool) -> int:
    """Side of the square an image is cached at: the input size for eval, a little more for training."""
    return round(TRAIN_MARGIN * image_size) if train else image_size


def center_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Crop the centred square of the short side and resize it to size x size (aspect kept)."""
    _check_rgb(rgb)
    left, top, side = centre_box(*rgb.shape[:2])
    square = rgb[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interp)


def to_tensor(
    rgb: np.ndarray, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
) -> torch.Tensor:
    """HxWx3 uint8 -> normalised float32 CHW tensor."""
    scale = np.asarray([1.0 / (255.0 * s) for s in std], np.float32)
    shift = np.asarray([m / s for m, s in zip(mean, std, strict=True)], np.float32)
    x = rgb.astype(np.float32) * scale - shift
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def preprocess_eval(
    rgb_uint8: np.ndarray,
    image_size: int,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> torch.Tensor:
    """The network input for an RGB photo at evaluation and inference: centre square, resize, normalise."""
    return to_tensor(center_square(rgb_uint8, image_size), mean, std)


def model_square(rgb: np.ndarray, size: int, crop: str = CENTRE, circle: Circle | None = None,
                 margin: float = LENS_MARGIN) -> np.ndarray:
    """The size x size uint8 square a model with this crop sees: around the lens, or the centred square.

    LENS without a circle (no lens was found) falls back to the centred square, in training
    and in grading alike.
    """
    if crop == LENS and circle is not None:
        return crop_to_lens(rgb, circle, size, margin)[0]
    if crop not in (CENTRE, LENS):
        raise PreprocessError(f"crop {crop!r} has no transform")
    return center_square(rgb, size)


class ModelTransform:
    """The one function from a photograph (and, for the lens crop, its lens circle) to a model's input."""

    def __init__(self, cfg: PreprocessConfig) -> None:
        self.cfg = cfg

    def __call__(self, rgb: np.ndarray, circle: Circle | None = None) -> torch.Tensor:
        cfg = self.cfg
        if cfg.crop == CENTRE:
            return preprocess_eval(rgb, cfg.size, cfg.mean, cfg.std)  # exactly as before the lens crop existed
        _check_rgb(rgb)
        return to_tensor(model_square(rgb, cfg.size, cfg.crop, circle, cfg.margin), cfg.mean, cfg.std)


def build_transform(cfg: PreprocessConfig) -> ModelTransform:
    """The one function from an RGB photo (and its lens circle, for LENS) to the input of a model with `cfg`."""
    if cfg.crop not in (CENTRE, LENS):
        raise PreprocessError(f"crop {cfg.crop!r} has no transform yet")
    return ModelTransform(cfg)


def augment(rgb: np.ndarray, image_size: int, rng: np.random.Generator, cfg: Augment = Augment()) -> np.ndarray:
    """A randomly cropped, rotated, flipped, colour-jittered and sometimes blurred size x size uint8 copy."""
    _check_rgb(rgb)
    out = cv2.warpAffine(
        rgb,
        _random_affine(rgb.shape[0], rgb.shape[1], image_size, rng, cfg),
        (image_size, image_size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    out = cv2.LUT(out, _random_lut(rng, cfg))
    if rng.random() < cfg.blur_p:
        sigma = rng.uniform(*cfg.blur_sigma) * image_size / 224.0
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma)
    return out


def train_transform(
    rgb: np.ndarray,
    image_size: int,
    rng: np.random.Generator,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    cfg: Augment = Augment(),
) -> torch.Tensor:
    """Augment, then normalise to a float32 CHW tensor."""
    return to_tensor(augment(rgb, image_size, rng, cfg), mean, std)


def _random_affine(h: int, w: int, size: int, rng: np.random.Generator, cfg: Augment) -> np.ndarray:
    """2x3 matrix mapping output pixels to source pixels: crop + zoom + shift + rotation + flips."""
    short = min(h, w)
    side = math.sqrt(rng.uniform(*cfg.scale)) * short
    ratio = math.exp(rng.uniform(math.log(cfg.ratio[0]), math.log(cfg.ratio[1])))
    sx, sy = side * math.sqrt(ratio) / size, side / math.sqrt(ratio) / size
    if cfg.flip and rng.random() < 0.5:
        sx = -sx
    if cfg.flip and rng.random() < 0.5:
        sy = -sy
    theta = rng.uniform(0.0, 2.0 * math.pi) if cfg.rotate else 0.0
    c, s = math.cos(theta), math.sin(theta)
    a = np.array([[c * sx, -s * sy], [s * sx, c * sy]])
    shift = rng.uniform(-cfg.translate, cfg.translate, size=2) * short
    centre_src = np.array([(w - 1) / 2.0, (h - 1) / 2.0]) + shift
    centre_out = np.full(2, (size - 1) / 2.0)
    return np.hstack([a, (centre_src - a @ centre_out)[:, None]])


def _random_lut(rng: np.random.Generator, cfg: Augment) -> np.ndarray:
    """One 256x1x3 table doing gamma, contrast, brightness and white balance at once."""
    v = np.linspace(0.0, 1.0, 256)
    v = v ** rng.uniform(*cfg.gamma)
    v = (v - 0.5) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + 0.5
    v = v + rng.uniform(-cfg.brightness, cfg.brightness)
    gains = rng.uniform(1 - cfg.white_balance, 1 + cfg.white_balance, size=3)
    table = np.clip(v[:, None] * gains[None, :] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return table.reshape(256, 1, 3)


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {got}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"expected a non-empty image, got shape {rgb.shape}")
