"""Write a synthetic dataset folder: images/, labels.csv and schema.json.

Sample i is seeded from (seed, i) and its camera look from (seed, patient), so the
result is the same whatever the number of worker processes.
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
from engine.synth.geometry import SynthError
from engine.synth.render import draw_session
from engine.synth.sample import render_sample

JPEG_QUALITY = 92
EYES = ("OD", "OS")
_OWN_IMAGE = re.compile(r"p\d{4,}_O[DS]\.jpg")


def csv_columns() -> list[str]:
    """labels.csv header: image, grade, the six sub-labels in schema order, patient_id, eye."""
    return ["image", "grade", *DEFAULT_SCHEMA.names, "patient_id", "eye"]


def _targets(n: int, seed: int, balanced: bool) -> list[int | None]:
    """Per-sample target grades: an even share of each grade, shuffled, or None (natural prior)."""
    if not balanced:
        return [None] * n
    grades = np.resize(np.arange(NUM_GRADES), n)
    return [int(g) for g in np.random.default_rng([seed, 0xBA1]).permutation(grades)]


def _row(index: int, seed: int, image_size: int, label_noise: float, target: int | None, out: Path) -> list:
    """Render sample `index`, write its image and return its CSV row."""
    patient, eye = index // 2 + 1, EYES[index % 2]
    session = draw_session(np.random.default_rng([seed, patient, 1]))
    s = render_sample(np.random.default_rng([seed, index, 0]), image_size, target, label_noise, session=session)
    name = f"images/p{patient:04d}_{eye}.jpg"
    ok, buf = cv2.imencode(".jpg", s.image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise SynthError(f"could not encode {name} as JPEG")
    (out / name).write_bytes(buf.tobytes())
    return [name, s.grade, *(s.sublabels[k] for k in DEFAULT_SCHEMA.names), f"p{patient:04d}", eye]


def _chunk(args: tuple) -> list[list]:
    """Render a contiguous block of samples."""
    indices, seed, image_size, label_noise, targets, out = args
    return [_row(i, seed, image_size, label_noise, t, out) for i, t in zip(indices, targets)]


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


def _prepare(out: Path, overwrite: bool) -> None:
    """Create OUT/images; refuse to mix with an existing dataset unless overwriting it."""
    if (out / "labels.csv").exists() and not overwrite:
        raise SynthError(f"{out} already holds a dataset (labels.csv); choose an empty folder or overwrite it")
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out} is a file, not a folder")
    (out / "images").mkdir(parents=True, exist_ok=True)
    if overwrite:  # old images of ours would linger beside the new labels
        for p in (out / "images").iterdir():
            if _OWN_IMAGE.fullmatch(p.name):
                p.unlink()


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
) -> Path:
    """Write n photographs (two eyes per patient) with labels.csv and schema.json; return the folder.

    Byte-identical labels.csv and identical pixels for the same arguments, whatever `workers`.
    `progress(done, n)` is called after each block of samples.
    """
    _check(n, seed, image_size, label_noise, workers)
    out = Path(out)
    _prepare(out, overwrite)
    targets = _targets(n, seed, balanced)
    block = max(1, min(64, math.ceil(n / (4 * workers))))
    jobs = [
        (list(range(a, min(a + block, n))), seed, image_size, label_noise, targets[a : a + block], out)
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
