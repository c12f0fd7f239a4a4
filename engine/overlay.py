"""Blend a class-activation map onto the photograph: one helper for CLI and GUI."""

from __future__ import annotations

import cv2
import numpy as np

from engine.choices import COLORBLIND_SAFE, COLORMAPS

__all__ = ["COLORBLIND_SAFE", "COLORMAPS", "colorize", "overlay_cam"]
# name -> OpenCV colour map (the names and which are colour-blind safe: engine.choices).
_CV_MAPS = {name: getattr(cv2, f"COLORMAP_{name.upper()}") for name in COLORMAPS}


def colorize(cam: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """A heat map in [0, 1] as an RGB uint8 picture."""
    if colormap not in _CV_MAPS:
        raise ValueError(f"unknown colour map {colormap!r}; choose one of {', '.join(COLORMAPS)}")
    scaled = np.uint8(np.clip(cam, 0.0, 1.0) * 255.0 + 0.5)
    return cv2.cvtColor(cv2.applyColorMap(scaled, _CV_MAPS[colormap]), cv2.COLOR_BGR2RGB)


def overlay_cam(rgb: np.ndarray, cam: np.ndarray, colormap: str = "jet", alpha: float = 0.45) -> np.ndarray:
    """Blend `cam` (HxW, [0, 1]) over `rgb` (HxWx3 uint8).

    The blend strength follows the heat, so cold regions stay as photographed and
    the clinician still sees the lens where the model did not look.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("overlay_cam needs an HxWx3 uint8 RGB image")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within 0-1, not {alpha}")
    if cam.shape != rgb.shape[:2]:
        cam = cv2.resize(cam.astype(np.float32), (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    heat = colorize(cam, colormap).astype(np.float32)
    weight = (alpha * np.clip(cam.astype(np.float32) * 1.5, 0.0, 1.0))[..., None]
    out = rgb.astype(np.float32) * (1.0 - weight) + heat * weight
    return np.uint8(np.clip(out + 0.5, 0, 255))
