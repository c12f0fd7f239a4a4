"""Write resources/samples/eye-sample.jpg, the synthetic photograph the frozen self-test grades.

Run once from the project root: `.venv/bin/python packaging/make_sample.py`. The same seed
gives the same image; it is committed, so builds never run this.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.synth.sheet import render_sample  # noqa: E402

SAMPLE = ROOT / "resources" / "samples" / "eye-sample.jpg"


def main() -> int:
    """Render a 256 px grade-3 eye and save it as a JPEG well under 100 KB."""
    sample = render_sample(np.random.default_rng(2024), image_size=256, target_grade=3)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        print("error: OpenCV could not encode the sample as JPEG", file=sys.stderr)
        return 1
    SAMPLE.parent.mkdir(parents=True, exist_ok=True)
    SAMPLE.write_bytes(buf.tobytes())
    print(f"wrote {SAMPLE.relative_to(ROOT)} ({len(buf) // 1024} KB, true grade {sample.true_grade})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
