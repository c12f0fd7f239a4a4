"""Write a synthetic dataset folder: images/, labels.csv and schema.json (and masks/ on request).

Sample i is seeded from (seed, i) and its camera look from (seed, patient), so the
result is the same whatever the number of worker processes. labels.csv also carries the
true lens circle (lens_cx, lens_cy, lens_r in pixels of the written image). With masks,
masks/<stem>_opacity.png holds the drawn opacity (0-255 for 0-1) and masks/<stem>_lens.png
the lens disc (255 visible, 128 hidden by a lid, 0 outside).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from engine.fsutil import atomic_write_text
from engine.schema import DEFAULT_SCHEMA, NUM_GRADES
from engine.synth.framing import CENTRED, check_framing
from engine.synth.geometry import SynthError
from engine.synth.render import draw_session
from engine.synth.sample import render_sample

JPEG_QUALITY = 92
EYES = ("OD", "OS")
_OWN_IMAGE = re.compile(r"p\d{4,}_O[DS]\.jpg")
_OWN_MASK = re.compile(r"p\d{4,}_O[DS]_(opacity|lens)\.png")
LENS_COLUMNS = ("lens_cx", "lens_cy", "lens_r")
MASKS_DIR = "masks"


def csv_columns() -> list[str]:
    """labels.csv header: image, grade, the six sub-labels in schema order, patient_id, eye, the lens circle."""
    return ["image", "grade", *DEFAULT_SCHEMA.names, "patient_id", "eye", *LENS_COLUMNS]


def mask_paths(image: str) -> tuple[str, str]:
    """The opacity and lens mask files (relative to the dataset folder) of an image written here."""
    stem = Path(image).stem
    return f"{MASKS_DIR}/{stem}_opacity.png", f"{MASKS_DIR}/{stem}_lens.png"


def _targets(n: int, seed: int, balanced: bool) -> list[int | None]:
    """Per-sample target grades: an even share of each grade, shuffled, or None (natural prior)."""
    if not balanced:
        return [None] * n
    grades = np.resize(np.arange(NUM_GRADES), n)
    return [int(g) for g in np.random.default_rng([seed, 0xBA1]).permutation(grades)]


def _encode(out: Path, name: str, ext: str, pixels: np.ndarray, params: list[int] | None = None) -> None:
    ok, buf = cv2.imencode(ext, pixels, params or [])
    if not ok:
        raise SynthError(f"could not encode {name}")
    (out / name).write_bytes(buf.tobytes())


def _row(index: int, seed: int, image_size: int, label_noise: float, target: int | None, out: Path, look: tuple) -> list:
    """Render sample `index`, write its image (and masks) and return its CSV row."""
    framing, masks = look
    patient, eye = index // 2 + 1, EYES[index % 2]
    session = draw_session(np.random.default_rng([seed, patient, 1]))
    rng = np.random.default_rng([seed, index, 0])
    s = render_sample(rng, image_size, target, label_noise, session=session, framing=framing)
    name = f"images/p{patient:04d}_{eye}.jpg"
    _encode(out, name, ".jpg", s.image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if masks:
        opacity, lens = mask_paths(name)
        _encode(out, opacity, ".png", np.round(s.opacity_mask * 255.0).astype(np.uint8))
        _encode(out, lens, ".png", s.lens_mask())
    cx, cy, r = s.circle
    circle = [int(cx), int(cy), f"{r:.2f}"]
    return [name, s.grade, *(s.sublabels[k] for k in DEFAULT_SCHEMA.names), f"p{patient:04d}", eye, *circle]


def _chunk(args: tuple) -> list[list]:
    """Render a contiguous block of samples."""
    indices, seed, image_size, label_noise, targets, out, look = args
    return [_row(i, seed, image_size, label_noise, t, out, look) for i, t in zip(indices, targets)]


def _check(n: int, seed: int, image_size: int, label_noise: float, workers: int) -> None:
    for name, value, low, high in (
        ("n", n, 1, None),
        ("seed", seed, 0, None),
        ("image size", image_size, 32, 2048),
        ("workers", workers, 1, 256),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, np.integer))
            or value < low
            or (high and value > high)
        ):
            span = f"at least {low}" if high is None else f"from {low} to {high}"
            raise SynthError(f"{name} {value!r} must be an integer {span}")
    if not 0.0 <= float(label_noise) <= 1.0:
        raise SynthError(f"label noise {label_noise!r} must be a probability from 0 to 1")


def _prepare(out: Path, overwrite: bool, masks: bool) -> None:
    """Create OUT/images (and OUT/masks); refuse to mix with an existing dataset unless overwriting it."""
    if (out / "labels.csv").exists() and not overwrite:
        raise SynthError(f"{out} already holds a dataset (labels.csv); choose an empty folder or overwrite it")
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out} is a file, not a folder")
    (out / "images").mkdir(parents=True, exist_ok=True)
    if overwrite:  # old images and masks of ours would linger beside the new labels
        for folder, own in (("images", _OWN_IMAGE), (MASKS_DIR, _OWN_MASK)):
            if (out / folder).is_dir():
                for p in (out / folder).iterdir():
                    if own.fullmatch(p.name):
                        p.unlink()
    if masks:
        (out / MASKS_DIR).mkdir(exist_ok=True)


def write_dataset(
    out: Path,
    n: int,
    seed: int,
    image_size: int = 256,
    label_noise: float = 0.0,
    balanced: bool = False,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    framing: str = CENTRED,
    masks: bool = False,
) -> Path:
    """Write n photographs (two eyes per patient) with labels.csv and schema.json; return the folder.

    Byte-identical labels.csv and identical pixels for the same arguments, whatever `workers`.
    `progress(done, n)` is called after each block of samples. framing: see synth.framing
    ("varied" mixes off-centre, zoomed-out, small-pupil, close-up and lid shots). masks:
    also write each image's true opacity and lens masks under masks/.
    """
    _check(n, seed, image_size, label_noise, workers)
    check_framing(framing)
    out = Path(out)
    _prepare(out, overwrite, masks)
    targets = _targets(n, seed, balanced)
    block = max(1, min(64, math.ceil(n / (4 * workers))))
    look = (framing, bool(masks))
    jobs = [
        (list(range(a, min(a + block, n))), seed, image_size, label_noise, targets[a : a + block], out, look)
        for a in range(0, n, block)
    ]
    rows: list[list] = []
    if workers == 1:
        for job in jobs:
            rows += _chunk(job)
            if progress:
                progress(len(rows), n)
    else:
        ctx = get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=cv2.setNumThreads, initargs=(1,)
        ) as pool:
            for part in pool.map(_chunk, jobs):
                rows += part
                if progress:
                    progress(len(rows), n)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(csv_columns())
    writer.writerows(rows)
    atomic_write_text(out / "labels.csv", text.getvalue())
    DEFAULT_SCHEMA.save(out / "schema.json")
    return out
