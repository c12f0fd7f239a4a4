"""Pictures that are not retro-illumination photographs of the lens, and spoiled ones that are.

Tests and benchmarks (benchmarks/bench_gate.py) share these drawers. Each `draw_*`
takes a generator and a size and returns an HxWx3 uint8 RGB image; NEGATIVES maps a kind
to its drawer. `sample_photos` yields matplotlib's sample photographs when matplotlib is
installed. `spoil` turns a good synthetic photograph into an under- or over-exposed,
blurred or tiny one, for the checks that should name that fault.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator

import cv2
import numpy as np

WORDS = "lens pupil cortical grade retro slit lamp clinic report patient opacity spoke visual acuity".split()


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def _frame(rng: np.random.Generator, size: int) -> tuple[int, int]:
    """(height, width) of a photograph about `size` px on its long side: square, 4:3 or 3:4."""
    aspect = float(rng.choice([1.0, 0.75, 4 / 3]))
    return (size, int(round(size / aspect))) if aspect > 1 else (int(round(size * aspect)), size)


def draw_external_eye(rng: np.random.Generator, size: int) -> np.ndarray:
    """A front view of an eye in ordinary light: skin, white sclera, a coloured iris and a black pupil."""
    h, w = _frame(rng, size)
    skin = np.array([rng.uniform(150, 230), rng.uniform(100, 170), rng.uniform(80, 140)])
    img = np.empty((h, w, 3), np.float32)
    img[:] = skin
    cx, cy = w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h
    half_w, half_h = rng.uniform(0.25, 0.45) * w, rng.uniform(0.12, 0.25) * h
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)[:, None]
    opening = np.abs(ys - cy) <= half_h * np.sqrt(np.clip(1 - ((xs - cx) / half_w) ** 2, 0, 1))
    img[opening] = np.array([235, 232, 225]) * rng.uniform(0.85, 1.0)  # sclera
    iris_r = half_h * rng.uniform(0.9, 1.3)
    colour = [(90, 60, 35), (70, 110, 150), (90, 120, 70), (50, 35, 25)][int(rng.integers(4))]
    d = np.hypot(xs - cx, ys - cy)
    iris = (d <= iris_r) & opening
    img[iris] = np.array(colour, np.float32) * rng.uniform(0.7, 1.2)
    img[(d <= iris_r * rng.uniform(0.25, 0.55)) & opening] = rng.uniform(5, 25)  # the black pupil
    glint = (d <= max(iris_r * 0.08, 1.0)) & (np.abs(xs - cx - iris_r * 0.3) < iris_r)
    img[glint & (ys < cy - iris_r * 0.1)] = 250
    img = cv2.GaussianBlur(img, (0, 0), max(size / 400, 0.5))
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    return _jpeg(np.clip(img, 0, 255).astype(np.uint8), 85)


def draw_flat(rng: np.random.Generator, size: int) -> np.ndarray:
    """One flat colour (often reddish, the hardest kind for a red-reflex finder), a little noise."""
    h, w = _frame(rng, size)
    colour = rng.uniform(0, 255, 3)
    if rng.uniform() < 0.5:
        colour = np.array([rng.uniform(150, 250), rng.uniform(40, 110), rng.uniform(20, 60)])
    img = np.full((h, w, 3), colour, np.float32) + rng.normal(0, 2, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def draw_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Sensor-like noise: white, or smoothed into colour blobs."""
    h, w = _frame(rng, size)
    img = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    if rng.uniform() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(2, 0.05 * size))
        img = (img - img.mean()) * 255 / max(float(img.std()) * 6, 1e-3) + 128
    return np.clip(img, 0, 255).astype(np.uint8)


def draw_document(rng: np.random.Generator, size: int) -> np.ndarray:
    """A photographed page: lines of dark text on off-white paper, sometimes a red stamp or heading."""
    h, w = _frame(rng, size)
    paper = np.array([rng.uniform(215, 250)] * 3) * np.array([1.0, rng.uniform(0.97, 1.0), rng.uniform(0.9, 1.0)])
    img = np.empty((h, w, 3), np.uint8)
    img[:] = paper.astype(np.uint8)
    scale = size / 500
    y = int(40 * scale) + 1
    while y < h - 10 * scale:
        line = " ".join(rng.choice(WORDS, int(rng.integers(3, 9))))
        ink = (30, 30, 30) if rng.uniform() > 0.1 else (180, 30, 30)
        cv2.putText(img, line, (int(20 * scale), y), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, ink,
                    max(1, int(round(1.4 * scale))), cv2.LINE_AA)
        y += int(rng.uniform(18, 30) * scale) + 1
    if rng.uniform() < 0.4:  # a round red stamp
        c = (int(rng.uniform(0.3, 0.7) * w), int(rng.uniform(0.3, 0.7) * h))
        cv2.circle(img, c, int(0.12 * min(h, w)), (200, 40, 40), max(2, int(4 * scale)), cv2.LINE_AA)
    return _jpeg(img, 85)


def draw_fundus(rng: np.random.Generator, size: int) -> np.ndarray:
    """A fundus-camera picture: an orange-red retina in a round field on black, vessels, the optic disc."""
    h, w = _frame(rng, size)
    img = np.zeros((h, w, 3), np.float32)
    r = min(h, w) * rng.uniform(0.42, 0.5)
    cx, cy = w / 2, h / 2
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)[:, None]
    d = np.hypot(xs - cx, ys - cy) / r
    base = np.array([rng.uniform(190, 240), rng.uniform(70, 120), rng.uniform(20, 50)], np.float32)
    fall = np.clip(1 - 0.35 * d**2, 0, 1)[..., None]
    img += base * fall
    od = (cx + rng.choice([-1, 1]) * r * rng.uniform(0.3, 0.45), cy + rng.uniform(-0.1, 0.1) * r)
    dod = np.hypot(xs - od[0], ys - od[1]) / (0.13 * r)
    img += np.exp(-(dod**4))[..., None] * np.array([50, 80, 50], np.float32)  # the pale optic disc
    mac = np.hypot(xs - (2 * cx - od[0]) * 0.5 - cx * 0.5, ys - cy) / (0.15 * r)
    img *= (1 - 0.3 * np.exp(-(mac**2)))[..., None]  # the darker macula
    vessels = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(6, 11))):
        ang = rng.uniform(0, 2 * np.pi)
        p = np.array(od, np.float64)
        width = max(1, int(rng.uniform(0.008, 0.02) * r))
        for _ in range(24):
            ang += rng.normal(0, 0.25)
            q = p + 0.06 * r * np.array([np.cos(ang), np.sin(ang)])
            cv2.line(vessels, tuple(int(v) for v in p), tuple(int(v) for v in q), 255, width, cv2.LINE_AA)
            p = q
    img *= (1 - 0.45 * vessels[..., None] / 255.0)
    img[d > 1] = 0
    img = cv2.GaussianBlur(img, (0, 0), max(size / 500, 0.5)) + rng.normal(0, 2, (h, w, 3)).astype(np.float32)
    return _jpeg(np.clip(img, 0, 255).astype(np.uint8), 90)


def draw_red_shapes(rng: np.random.Generator, size: int) -> np.ndarray:
    """Red squares, triangles and bars on a dark ground: red, bounded, but not a disc."""
    h, w = _frame(rng, size)
    img = np.full((h, w, 3), rng.uniform(5, 40), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        colour = tuple(int(v) for v in (rng.uniform(180, 250), rng.uniform(40, 100), rng.uniform(20, 60)))
        x, y = int(rng.uniform(0.1, 0.6) * w), int(rng.uniform(0.1, 0.6) * h)
        s = int(rng.uniform(0.2, 0.45) * min(h, w))
        if rng.uniform() < 0.5:
            cv2.rectangle(img, (x, y), (x + s, y + int(s * rng.uniform(0.4, 1.0))), colour, -1)
        else:
            pts = np.array([[x, y + s], [x + s, y + s], [x + s // 2, y]], np.int32)
            cv2.fillPoly(img, [pts], colour)
    return _jpeg(img, 90)


NEGATIVES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "external_eye": draw_external_eye,
    "flat": draw_flat,
    "noise": draw_noise,
    "document": draw_document,
    "fundus": draw_fundus,
    "red_shapes": draw_red_shapes,
}


def _as_rgb(img: np.ndarray) -> np.ndarray:
    if img.dtype != np.uint8:
        img = (img.astype(np.float64) * 255 / max(float(img.max()), 1)).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def sample_photos() -> Iterator[tuple[str, np.ndarray]]:
    """(name, RGB) for matplotlib's sample photographs, pictures and an MRI slice; nothing without matplotlib."""
    try:
        from matplotlib import cbook
    except ImportError:
        return
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"):
        with cbook.get_sample_data(name) as fh:
            data = np.frombuffer(fh.read(), np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if bgr is not None:
            yield name, bgr[..., ::-1].copy()
    with cbook.get_sample_data("s1045.ima.gz") as fh:
        raw = fh.read()  # matplotlib opens .gz files decompressed; older versions did not
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    mri = np.frombuffer(raw, ">u2").reshape(256, 256)
    yield "s1045.ima.gz", _as_rgb(mri.astype(np.float32))


def spoil(rgb: np.ndarray, fault: str, rng: np.random.Generator, radius: float) -> np.ndarray:
    """A retro-illumination photograph made too dark, too bright, out of focus or too small to grade.

    radius: the lens radius in px, so that the blur is sized to the lens.
    """
    img = rgb.astype(np.float32)
    if fault == "under_exposed":
        img *= rng.uniform(0.05, 0.12)
    elif fault == "over_exposed":
        img = img * rng.uniform(4.0, 6.0) + rng.uniform(20, 60)
    elif fault == "out_of_focus":
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.22, 0.35) * radius)
    elif fault == "tiny":  # a thumbnail in which the lens is 3-7 px in radius
        k = rng.uniform(3.0, 7.0) / radius
        h, w = rgb.shape[:2]
        return cv2.resize(rgb, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    else:
        raise ValueError(f"unknown fault {fault!r}")
    return np.clip(img, 0, 255).astype(np.uint8)


FAULTS = ("under_exposed", "over_exposed", "out_of_focus", "tiny")
