"""Cataract Grader engine: data, models, training and inference. Never imports Qt."""

from engine.limits import cap_opencv_pixels as _cap_opencv_pixels

__version__ = "0.1.0"

# Before anything imports cv2: its decoders then hold the pixel limit themselves, whatever a header claims.
_cap_opencv_pixels()
