"""Small builders shared by the app tests."""

from pathlib import Path

import cv2
import numpy as np

IRIS_BGR = (35, 45, 60)  # a dim, lit iris around the reflex: what the input gate expects of a retro-illumination photo


def write_disc(path: Path, radius: int | None = None, size: int = 64, surround=IRIS_BGR) -> Path:
    """A red disc on a dim iris: enough of a 'lens' for the tiny models, and one the input gate lets through."""
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = surround
    cv2.circle(img, (size // 2, size // 2), size // 3 if radius is None else radius, (40, 60, 220), -1)  # BGR red
    assert cv2.imwrite(str(path), img)
    return path
