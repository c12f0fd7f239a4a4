"""The CAM's array math and its placement on the photograph; the grader computes activations and gradients.

pytorch_grad_cam's CAM classes' `get_cam_weights`/`get_cam_image` are pure array math;
calling them through `CamMath` uses no model and registers no hooks.
"""

from __future__ import annotations

import numpy as np

import engine.compat  # noqa: F401  (before pytorch_grad_cam)


class CamMath:
    """One CAM method's weighting (GradCAM, HiResCAM, GradCAM++, LayerCAM, EigenCAM), applied to arrays we computed."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def get_cam_weights(self, *args):
        return self.cls.get_cam_weights(self, *args)

    def get_cam_image(self, *args):
        return self.cls.get_cam_image(self, *args)

    def heat(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """One (h, w) map from one image's (1, C, h, w) activations and gradients."""
        return self.get_cam_image(None, None, None, activations, gradients, False)[0]


def cam_math(method: str) -> CamMath:
    """The weighting of a method named in engine.choices.CAM_METHODS (GradeRequest has checked the name)."""
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM

    classes = {"gradcam": GradCAM, "hirescam": HiResCAM, "gradcam++": GradCAMPlusPlus, "layercam": LayerCAM,
               "eigencam": EigenCAM}
    return CamMath(classes[method])


def place_cam(raw: np.ndarray, box: tuple[int, int, int], height: int, width: int) -> np.ndarray:
    """ReLU, scale to [0, 1], resize onto the crop box (x0, y0, side) the model saw, zero outside it."""
    import cv2

    raw = np.maximum(raw, 0).astype(np.float32)
    top = float(raw.max())
    raw = raw / top if top > 0 else raw
    x0, y0, side = box
    canvas = np.zeros((height, width), np.float32)
    square = canvas[y0 : y0 + side, x0 : x0 + side]  # resized and clipped in place: no second full-size map
    cv2.resize(raw, (side, side), dst=square, interpolation=cv2.INTER_LINEAR)
    np.clip(square, 0.0, 1.0, out=square)
    return canvas
