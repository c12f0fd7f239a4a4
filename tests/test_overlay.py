"""engine.overlay: the banded blend gives exactly the whole-frame formula."""

import numpy as np
import pytest

from engine import overlay


def _whole_frame(rgb, cam, colormap, alpha):
    heat = overlay.colorize(cam, colormap).astype(np.float32)
    weight = (alpha * np.clip(cam.astype(np.float32) * 1.5, 0.0, 1.0))[..., None]
    return np.uint8(np.clip(rgb.astype(np.float32) * (1.0 - weight) + heat * weight + 0.5, 0, 255))


def test_blend_in_bands_equals_the_whole_frame(monkeypatch):
    monkeypatch.setattr(overlay, "_BAND_PIXELS", 5000)  # many bands, the last one partial
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (301, 70, 3), np.uint8)
    cam = rng.random((301, 70)).astype(np.float32)
    np.testing.assert_array_equal(overlay.overlay_cam(rgb, cam, "inferno", 0.7), _whole_frame(rgb, cam, "inferno", 0.7))


def test_unknown_colour_map_is_refused():
    with pytest.raises(ValueError, match="unknown colour map"):
        overlay.overlay_cam(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32), "rainbow")
