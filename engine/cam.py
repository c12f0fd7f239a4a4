"""The CAM's array math and its placement on the photograph; the grader computes activations and gradients.

The five weightings are those of pytorch_grad_cam 1.5 (GradCAM, HiResCAM, GradCAM++, LayerCAM,
EigenCAM), written out here over numpy arrays: the package's import pulls in matplotlib, scipy
and scikit-learn for features the app never uses (about 200 MiB in the frozen app).
tests/test_cam_math.py holds every method equal to pytorch_grad_cam's own classes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_EPS = 1e-6  # pytorch_grad_cam's GradCAM++ denominator guard


def _gradcam_weights(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    return grads.mean(axis=(2, 3))


def _gradcam_pp_weights(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Equation 19 of Chattopadhyay et al. (arXiv:1710.11063), with the ReLU of eq. 7."""
    g2 = grads**2
    sum_acts = acts.sum(axis=(2, 3), keepdims=True)
    aij = g2 / (2 * g2 + sum_acts * g2 * grads + _EPS)
    aij = np.where(grads != 0, aij, 0)
    return (np.maximum(grads, 0) * aij).sum(axis=(2, 3))


def _weighted(weights: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A channel-weighted map: sum over channels of weight(c) * activation(c)."""
    return lambda acts, grads: (weights(acts, grads)[:, :, None, None] * acts).sum(axis=1)


def _eigen(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """The projection of each position's centred activations on their first principal component."""
    acts = np.where(np.isnan(acts), 0, acts)
    out = []
    for a in acts:
        flat = a.reshape(a.shape[0], -1).T
        flat = flat - flat.mean(axis=0)
        _u, _s, vt = np.linalg.svd(flat, full_matrices=True)
        out.append((flat @ vt[0, :]).reshape(a.shape[1:]))
    return np.float32(out)


_METHODS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "gradcam": _weighted(_gradcam_weights),
    "hirescam": lambda acts, grads: (grads * acts).sum(axis=1),
    "gradcam++": _weighted(_gradcam_pp_weights),
    "layercam": lambda acts, grads: (np.maximum(grads, 0) * acts).sum(axis=1),
    "eigencam": _eigen,
}


class CamMath:
    """One CAM method's weighting, applied to a (B, C, h, w) batch of activations and their gradients."""

    def __init__(self, method: str) -> None:
        self.method = method
        self._fn = _METHODS[method]

    def maps(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """(B, h, w) raw maps, before ReLU and scaling."""
        return self._fn(activations, gradients)

    def heat(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """One (h, w) map from one image's (1, C, h, w) activations and gradients."""
        return self.maps(activations, gradients)[0]


def cam_math(method: str) -> CamMath:
    """The weighting of a method named in engine.choices.CAM_METHODS (GradeRequest has checked the name)."""
    return CamMath(method)


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
