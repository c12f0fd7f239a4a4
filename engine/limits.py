"""Size limits shared by image decoding, training and model cards.

This module imports nothing, so `engine/__init__` can read it before anything loads OpenCV.
"""

from __future__ import annotations

import os
import sys

MAX_IMAGE_PIXELS = 80_000_000  # largest photograph decoded (width x height)
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 1024  # side of a model's square input, px: training and cards alike
OPENCV_PIXELS_ENV = "OPENCV_IO_MAX_IMAGE_PIXELS"

# The limit OpenCV's own decoders enforce, when this process set it before OpenCV was loaded; else None.
opencv_pixel_cap: int | None = None


def cap_opencv_pixels() -> int | None:
    """Make OpenCV's decoders refuse images over MAX_IMAGE_PIXELS (OpenCV reads the variable once, when it loads)."""
    global opencv_pixel_cap
    try:
        current = int(os.environ.get(OPENCV_PIXELS_ENV, ""))
    except ValueError:
        current = 0
    if "cv2" in sys.modules:  # too late to set it: it holds only if it was set when the process started
        opencv_pixel_cap = current if 0 < current <= MAX_IMAGE_PIXELS else None
        return opencv_pixel_cap
    if not 0 < current <= MAX_IMAGE_PIXELS:
        os.environ[OPENCV_PIXELS_ENV] = str(MAX_IMAGE_PIXELS)
        current = MAX_IMAGE_PIXELS
    opencv_pixel_cap = current
    return current
