"""Synthetic retro-illumination photographs of cortical cataract, with measured labels.

The clinic's real photographs are private, so tests, demos and benchmarks use these.
Each sample draws cortical spokes (dark radial shadows growing from the lens edge toward
the centre) as an opacity mask, measures the six sub-labels and the grade from that
mask (see `grade_from_measurements`), then photographs it with realistic nuisances:
pupil size and decentration, illumination fall-off, vignetting, Purkinje glare, lid and
lash shadows, defocus, sensor noise, white balance and JPEG artefacts. See synth.sample
for label noise, synth.geometry for the spoke spec and the measurements.

Run `python -m engine.synth.sheet --figure docs/synthetic-grades.png` for a contact sheet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from engine.schema import NUM_GRADES
from engine.synth.geometry import Spoke, SynthError, grade_from_measurements, measure_mask
from engine.synth.sample import SynthSample, render_sample
from engine.synth.writer import write_dataset

__all__ = [
    "Spoke",
    "SynthError",
    "SynthSample",
    "contact_sheet",
    "grade_from_measurements",
    "measure_mask",
    "render_sample",
    "write_dataset",
]


def contact_sheet(seed: int = 0, image_size: int = 256) -> np.ndarray:
    """One example per grade 0-7 in a labelled 2x4 grid (RGB uint8), for docs and eyeballing."""
    tiles = []
    for g in range(NUM_GRADES):
        for attempt in range(50):  # a clearly visible example of the grade
            s = render_sample(np.random.default_rng([seed, g, attempt]), image_size, target_grade=g)
            if s.true_grade == g and (g == 0 or s.true_sublabels["opacity_density"] >= 2):
                break
        tiles.append(_label_tile(s, image_size))
    rows = [np.concatenate(tiles[i : i + 4], axis=1) for i in (0, 4)]
    return np.concatenate(rows, axis=0)


def _label_tile(s: SynthSample, size: int) -> np.ndarray:
    """The image with a caption bar: grade, then area, sectors and central involvement."""
    bar = np.full((max(size // 6, 24), size, 3), 245, np.uint8)
    scale = size / 512.0
    sub = s.true_sublabels
    cv2.putText(
        bar,
        f"grade {s.true_grade}",
        (6, int(bar.shape[0] * 0.45)),
        cv2.FONT_HERSHEY_SIMPLEX,
        1.6 * scale,
        (0, 0, 0),
        max(1, int(3 * scale)),
        cv2.LINE_AA,
    )
    detail = f"area {100 * s.area_fraction:.0f}%  sect {sub['sectors_involved']}  centre {sub['central_involvement']}"
    cv2.putText(
        bar,
        detail,
        (6, int(bar.shape[0] * 0.85)),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.9 * scale,
        (60, 60, 60),
        max(1, int(2 * scale)),
        cv2.LINE_AA,
    )
    tile = np.concatenate([s.image, bar], axis=0)
    tile[:, -1] = tile[-1, :] = 255
    return tile


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.synth.sheet --figure PATH`: write the contact sheet."""
    parser = argparse.ArgumentParser(prog="python -m engine.synth.sheet", description=__doc__.splitlines()[0])
    parser.add_argument("--figure", type=Path, required=True, help="PNG to write the contact sheet to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=256)
    args = parser.parse_args(argv)
    sheet = contact_sheet(args.seed, args.image_size)
    ok, buf = cv2.imencode(".png", sheet[..., ::-1])
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    args.figure.write_bytes(buf.tobytes())
    print(f"wrote {args.figure} ({sheet.shape[1]}x{sheet.shape[0]} px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
