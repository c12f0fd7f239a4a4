"""Small builders shared by the app tests."""

from pathlib import Path

import cv2
import numpy as np


def write_disc(path: Path, radius: int | None = None, size: int = 64) -> Path:
    """A red disc on black: enough of a 'lens' for the tiny models."""
    img = np.zeros((size, size, 3), np.uint8)
    cv2.circle(img, (size // 2, size // 2), size // 3 if radius is None else radius, (40, 60, 220), -1)  # BGR red
    assert cv2.imwrite(str(path), img)
    return path
