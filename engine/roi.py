"""Find the lens (the red-reflex disc) in a retro-illumination photograph, and crop to it.

The finder works on small copies, so its cost hardly depends on the photograph's size:
a coarse pass on a copy whose long side is COARSE_SIDE px proposes discs from the
redness map (red minus the mean of green and blue, median-filtered so glare spots
vanish); a fine pass resamples the photograph around each proposal so that the disc's
radius is about FINE_RADIUS px, casts rays from the centre, takes the strongest
bright-to-dark steps along each ray and fits a circle to them by RANSAC. Redness holds
even where a dense cataract shadows most of the disc, and the robust fit ignores the
rim where a lid or a spoke hides it. The confidence says how much the image looks like
a red disc bounded by a dark surround; engine.gate turns it into a reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

COARSE_SIDE = 128  # long side of the coarse copy, px
FINE_RADIUS = 40.0  # the disc's radius in the fine crop, px
FINE_SIGMA = 0.5  # px of smoothing in the fine crop
FINE_MARGIN = 1.6  # the fine crop's half side in disc radii
LENS_MARGIN = 1.2  # the grading crop's half side in disc radii: the disc and a rim of iris
N_RAYS = 72
N_STEPS = 40
MAX_PROPOSALS = 3
N_CANDIDATES = 3  # rim candidates per ray: its strongest falls of redness
CANDIDATE_ODDS = (0.6, 0.25, 0.15)  # how often a RANSAC sample takes a ray's first, second, third candidate
N_TRIPLES = 256
MIN_FALL = 0.2  # a rim candidate falls at least this share of a typical ray's strongest fall
LANDING = 3  # profile samples past a fall where its landing level is read
_ANGLES = np.linspace(0.0, 2.0 * np.pi, N_RAYS, endpoint=False)
_COS, _SIN = np.cos(_ANGLES).astype(np.float32), np.sin(_ANGLES).astype(np.float32)


class LensError(ValueError):
    """An image or circle the finder or the crop cannot work with."""


@dataclass(frozen=True)
class Circle:
    """A disc in pixels of an image: centre (cx, cy) with pixel centres at integers, radius r."""

    cx: float
    cy: float
    r: float

    def iou(self, other: Circle) -> float:
        """Intersection over union of the two discs (exact)."""
        d = math.hypot(self.cx - other.cx, self.cy - other.cy)
        r1, r2 = self.r, other.r
        if d >= r1 + r2:
            return 0.0
        if d <= abs(r1 - r2):
            inter = math.pi * min(r1, r2) ** 2
        else:
            a1 = r1 * r1 * math.acos(max(-1.0, min(1.0, (d * d + r1 * r1 - r2 * r2) / (2 * d * r1))))
            a2 = r2 * r2 * math.acos(max(-1.0, min(1.0, (d * d + r2 * r2 - r1 * r1) / (2 * d * r2))))
            k = (-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2)
            inter = a1 + a2 - 0.5 * math.sqrt(max(k, 0.0))
        return inter / (math.pi * (r1 * r1 + r2 * r2) - inter)


@dataclass(frozen=True)
class LensFit:
    """What the finder saw: the best disc (None when nothing disc-like was found) and its evidence.

    confidence: 0..1, the product of the evidence ramps below; support: share of the rim
    where a bright-to-dark step lies on the circle; contrast: redness inside minus
    outside (0-255 scale); redness: red over green inside the disc (a red reflex is > 1.6).
    """

    circle: Circle | None
    confidence: float
    support: float = 0.0
    contrast: float = 0.0
    redness: float = 0.0


@dataclass(frozen=True)
class CropBox:
    """The square of the source image a crop shows: columns x0..x0+side, rows y0..y0+side (may pass the edges).

    A crop pixel (u, v) of a size x size crop shows source point
    (x0 + (u + 0.5) * side / size - 0.5, y0 + (v + 0.5) * side / size - 0.5).
    """

    x0: int
    y0: int
    side: int
    size: int

    def to_source(self, u: float, v: float) -> tuple[float, float]:
        """Source pixel coordinates of crop pixel (u, v)."""
        k = self.side / self.size
        return self.x0 + (u + 0.5) * k - 0.5, self.y0 + (v + 0.5) * k - 0.5

    def to_crop(self, x: float, y: float) -> tuple[float, float]:
        """Crop pixel coordinates of source pixel (x, y)."""
        k = self.size / self.side
        return (x - self.x0 + 0.5) * k - 0.5, (y - self.y0 + 0.5) * k - 0.5


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise LensError(f"expected an HxWx3 uint8 RGB image, got {got}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise LensError(f"expected a non-empty image, got shape {rgb.shape}")


def lens_box(circle: Circle, margin: float = LENS_MARGIN) -> tuple[int, int, int]:
    """(x0, y0, side) of the whole-pixel square centred on the disc, half side margin * r."""
    if not (math.isfinite(circle.r) and circle.r > 0 and math.isfinite(circle.cx) and math.isfinite(circle.cy)):
        raise LensError(f"a lens circle needs a finite centre and a radius above 0, not {circle}")
    if not margin > 0:
        raise LensError(f"the crop margin must be above 0, not {margin}")
    side = max(1, int(round(2.0 * margin * circle.r)))
    return int(round(circle.cx + 0.5 - side / 2.0)), int(round(circle.cy + 0.5 - side / 2.0)), side


def crop_to_lens(
    rgb: np.ndarray, circle: Circle, size: int, margin: float = LENS_MARGIN, fast: bool = False
) -> tuple[np.ndarray, CropBox]:
    """The size x size square around the disc (half side margin * r), black beyond the image, and its box.

    fast: decimate by whole pixels before the area filter (for the checks; the model's
    input keeps the full-quality resize).
    """
    _check_rgb(rgb)
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise LensError(f"the crop size must be a whole number of px above 0, not {size!r}")
    x0, y0, side = lens_box(circle, margin)
    box = CropBox(x0, y0, side, int(size))
    return _resample(rgb, box, fast), box


def _resample(img: np.ndarray, box: CropBox, fast: bool) -> np.ndarray:
    """The box's square of img at box.size px; pixels beyond the image are 0."""
    h, w = img.shape[:2]
    step = max(1, box.side // (2 * box.size)) if fast else 1
    xa, ya = max(box.x0, 0), max(box.y0, 0)
    xb, yb = min(box.x0 + box.side, w), min(box.y0 + box.side, h)
    if xb <= xa or yb <= ya:
        return np.zeros((box.size, box.size, *img.shape[2:]), img.dtype)
    part = img[ya:yb:step, xa:xb:step]
    n = -(-box.side // step)  # the square's side in decimated pixels
    top, left = -(-(ya - box.y0) // step), -(-(xa - box.x0) // step)
    pad = (top, n - top - part.shape[0], left, n - left - part.shape[1])
    if any(pad):
        part = cv2.copyMakeBorder(part, *(max(p, 0) for p in pad), cv2.BORDER_CONSTANT, value=0)[:n, :n]
    if n == box.size:
        return np.ascontiguousarray(part)
    interp = cv2.INTER_AREA if n > box.size else cv2.INTER_LINEAR
    return cv2.resize(part, (box.size, box.size), interpolation=interp)


def paste_back(crop_map: np.ndarray, box: CropBox, height: int, width: int) -> np.ndarray:
    """A crop-space map (any size, e.g. a heat map) laid onto a height x width source canvas, 0 elsewhere."""
    canvas = np.zeros((height, width), np.float32)
    if box.side <= 0:
        return canvas
    full = cv2.resize(np.asarray(crop_map, np.float32), (box.side, box.side), interpolation=cv2.INTER_LINEAR)
    xa, ya = max(box.x0, 0), max(box.y0, 0)
    xb, yb = min(box.x0 + box.side, width), min(box.y0 + box.side, height)
    if xb > xa and yb > ya:
        canvas[ya:yb, xa:xb] = full[ya - box.y0 : yb - box.y0, xa - box.x0 : xb - box.x0]
    return canvas


# ---- the finder -------------------------------------------------------------------------------


def redness_map(rgb: np.ndarray) -> np.ndarray:
    """R - (G + B) / 2, saturated to 0..255 (uint8): high on the red reflex, low on iris, skin glare and white."""
    r, g, b = cv2.split(rgb)
    return cv2.subtract(r, cv2.addWeighted(g, 0.5, b, 0.5, 0.0))


def hue_map(rgb: np.ndarray) -> np.ndarray:
    """(R - (G + B) / 2) / (R + 8) as float32: the reflex's red hue, which a cataract's shadow dims but keeps."""
    f = rgb.astype(np.float32)
    r = f[..., 0]
    return (r - 0.5 * (f[..., 1] + f[..., 2])) / (r + 8.0)


def find_lens(rgb: np.ndarray) -> LensFit:
    """The red-reflex disc of a photograph, with its confidence (LensFit.circle is None if nothing fits)."""
    _check_rgb(rgb)
    h, w = rgb.shape[:2]
    if min(h, w) < 8:
        return LensFit(None, 0.0)
    side = max(h, w)
    box = CropBox(0, 0, side, min(COARSE_SIDE, side))
    small = _resample(rgb, box, fast=True)
    maps = _maps(small, 1.0)
    best, best_score = None, 0.0
    for guess in _proposals(small, maps[1]):
        fitted, rays = _fit_rim(maps, guess, (0.5, 1.6))
        if fitted is None:
            continue
        score = rays["support"] * max(_hue_contrast(maps[1], fitted), 0.0)
        if score > best_score:
            best, best_score = fitted, score
    if best is None:
        return LensFit(None, 0.0)
    k = side / box.size
    return _refine(rgb, Circle((best.cx + 0.5) * k - 0.5, (best.cy + 0.5) * k - 0.5, best.r * k))


def _maps(crop: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed redness (0-255) and red hue maps of a crop, float32."""
    red = redness_map(crop).astype(np.float32)
    hue = hue_map(crop)
    if sigma > 0:
        red = cv2.GaussianBlur(red, (0, 0), sigma)
        hue = cv2.GaussianBlur(hue, (0, 0), sigma)
    return red, hue


def _ring_median(img: np.ndarray, c: Circle, lo: float, hi: float) -> float:
    """Median of img over the ring lo*r..hi*r around c (NaN when the ring misses the image)."""
    h, w = img.shape[:2]
    x0, x1 = max(int(c.cx - hi * c.r), 0), min(int(c.cx + hi * c.r) + 2, w)
    y0, y1 = max(int(c.cy - hi * c.r), 0), min(int(c.cy + hi * c.r) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return float("nan")
    ys, xs = np.ogrid[y0:y1, x0:x1]
    d2 = ((xs - c.cx) ** 2 + (ys - c.cy) ** 2) / max(c.r * c.r, 1e-6)
    sel = img[y0:y1, x0:x1][(d2 >= lo * lo) & (d2 < hi * hi)]
    return float(np.median(sel)) if sel.size else float("nan")


def _hue_contrast(hue: np.ndarray, c: Circle) -> float:
    """Red hue just inside the rim minus just outside it: high for the reflex against iris or lid."""
    return _ring_median(hue, c, 0.3, 0.85) - _ring_median(hue, c, 1.15, 1.5)


def _proposals(small: np.ndarray, hue: np.ndarray) -> list[Circle]:
    """Candidate discs in coarse pixels: the largest blobs of high redness and of high red hue."""
    red = cv2.medianBlur(redness_map(small), 5)
    hue8 = cv2.medianBlur(np.clip(hue * 255.0, 0, 255).astype(np.uint8), 5)
    out = []
    for img, floor in ((red, 4), (hue8, 40)):
        level, mask = cv2.threshold(img, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        if level < floor:  # hardly any red anywhere
            continue
        out += _blobs(mask)
    return out


def _blobs(mask: np.ndarray) -> list[Circle]:
    """Discs around the largest components of a binary mask (box and area estimates)."""
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    n, _, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
    order = np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:MAX_PROPOSALS] + 1
    out = []
    for i in order:
        x, y, bw, bh, area = stats[i]
        if area < 6:
            continue
        out.append(Circle(x + (bw - 1) / 2.0, y + (bh - 1) / 2.0, max(bw, bh) / 2.0))
        if bw * bh > 1.6 * area:  # a ragged blob: its area may say more than its box
            out.append(Circle(float(cents[i][0]), float(cents[i][1]), math.sqrt(area / math.pi)))
    return out


def _refine(rgb: np.ndarray, circle: Circle) -> LensFit:
    """Fit the rim again on crops where the disc is about FINE_RADIUS px; score the result."""
    for span in ((0.8, 1.2), (0.9, 1.1)):
        size = int(round(2 * FINE_MARGIN * min(FINE_RADIUS, max(circle.r, 4.0))))  # never upsample much
        crop, box = crop_to_lens(rgb, circle, size, FINE_MARGIN, fast=True)
        maps = _maps(crop, FINE_SIGMA)
        c0 = Circle(*box.to_crop(circle.cx, circle.cy), circle.r * box.size / box.side)
        fitted, rays = _fit_rim(maps, c0, span, slack=0.12)
        if fitted is None:
            return LensFit(None, 0.0)
        cx, cy = box.to_source(fitted.cx, fitted.cy)
        circle = Circle(cx, cy, fitted.r * box.side / box.size)
    return _score(crop, maps, fitted, rays, circle)


def _profiles(img: np.ndarray, c: Circle, span: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """img along N_RAYS rays from the centre (rows), at radii span * r (N_STEPS columns; NaN off the image)."""
    rho = np.linspace(span[0], span[1], N_STEPS, dtype=np.float32) * np.float32(c.r)
    mx = np.float32(c.cx) + _COS[:, None] * rho[None, :]
    my = np.float32(c.cy) - _SIN[:, None] * rho[None, :]
    prof = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
    return prof, rho


def _landing(prof: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """0..1 per candidate: how close to the profile's darkest level the value is just past the fall."""
    if not np.isfinite(prof).any():
        return np.zeros(idx.shape, np.float32)
    low, high = np.nanpercentile(prof, (5, 95))
    after = np.take_along_axis(prof, np.minimum(idx + 1 + LANDING, N_STEPS - 1), 1)
    after = np.where(np.isnan(after), low, after)
    return np.clip(1.0 - (after - low) / max(high - low, 1e-6), 0.0, 1.0)


def _falls(
    prof: np.ndarray, hue: np.ndarray, rho: np.ndarray, c: Circle, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The n strongest outward falls of redness on each ray: x, y (crop px) and weight.

    The weight is the fall's size times how close to the darkest redness and the lowest hue
    it lands: the rim falls to the iris, while the edge of a bright centre inside a shadowed
    disc (a dense cataract) lands on the shadow, which keeps the reflex's red hue.
    """
    d = prof[:, :-2] - prof[:, 2:]  # positive where the value falls outward
    d = np.where(np.isnan(d), 0.0, d)
    peak = np.zeros_like(d)  # local maxima only, so one long slope gives one candidate
    peak[:, 1:-1] = np.where((d[:, 1:-1] >= d[:, :-2]) & (d[:, 1:-1] > d[:, 2:]), d[:, 1:-1], 0.0)
    idx = np.argsort(-peak, axis=1)[:, :n]
    strength = np.take_along_axis(peak, idx, 1) * _landing(prof, idx) * _landing(hue, idx)
    radius = np.interp(_subpixel(peak, idx) + 1.0, np.arange(N_STEPS), rho)
    return c.cx + _COS[:, None] * radius, c.cy - _SIN[:, None] * radius, strength


def _fit_rim(
    maps: tuple[np.ndarray, np.ndarray], c: Circle, span: tuple[float, float], slack: float = 1.0
) -> tuple[Circle | None, dict]:
    """RANSAC circle through the strongest falls of redness on each ray, then least squares on its inliers."""
    red_p, rho = _profiles(maps[0], c, span)
    hue_p, _ = _profiles(maps[1], c, span)
    xs, ys, strength = _falls(red_p, hue_p, rho, c, N_CANDIDATES)
    strength = strength / max(float(np.median(strength[:, 0])), 1e-6)
    ok = strength > MIN_FALL
    if ok[:, 0].sum() < 6:
        return None, {}
    best = _ransac(xs, ys, strength, c, slack)
    if best is None:
        return None, {}
    fitted = best
    for _ in range(2):
        inl = _inliers(xs, ys, fitted) & ok
        fitted = _lsq_circle(*_one_per_ray(xs, ys, inl, fitted)) or fitted
    inl = (_inliers(xs, ys, fitted) & ok).any(axis=1)
    h, w = maps[0].shape
    rim_x, rim_y = fitted.cx + _COS * fitted.r, fitted.cy - _SIN * fitted.r
    on_image = (rim_x >= 1) & (rim_x <= w - 2) & (rim_y >= 1) & (rim_y <= h - 2)
    support = float((inl & on_image).sum() / max(on_image.sum(), 1))
    return fitted, {"prof": red_p, "rho": rho, "inlier": inl, "on_image": on_image, "support": support}


def _one_per_ray(xs: np.ndarray, ys: np.ndarray, inl: np.ndarray, c: Circle) -> tuple[np.ndarray, np.ndarray]:
    """For each ray with an inlier, its candidate nearest the circle."""
    res = np.where(inl, np.abs(np.hypot(xs - c.cx, ys - c.cy) - c.r), np.inf)
    j = np.argmin(res, axis=1)
    rows = np.flatnonzero(inl.any(axis=1))
    return xs[rows, j[rows]], ys[rows, j[rows]]


def _subpixel(f: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Parabolic peak position around each index of f's rows."""
    n = f.shape[1]
    i0 = np.clip(idx, 1, n - 2)
    a, b, cc = (np.take_along_axis(f, i0 + k, 1) for k in (-1, 0, 1))
    den = a - 2 * b + cc
    off = np.where(np.abs(den) > 1e-6, 0.5 * (a - cc) / np.where(den == 0, 1, den), 0.0)
    return i0 + np.clip(off, -0.5, 0.5)


def _triples() -> np.ndarray:
    """Fixed RANSAC samples: three rays at least 30 degrees apart, each with one of its candidates.

    The spread varies, so that some triples fall on the visible arc when a lid hides part of the rim.
    """
    rng = np.random.default_rng(0x0C1)
    rows: list[list[int]] = []
    gap = N_RAYS // 12
    while len(rows) < N_TRIPLES:
        rays = np.sort(rng.choice(N_RAYS, 3, replace=False))
        if min(np.diff(rays).min(), N_RAYS - rays[2] + rays[0]) >= gap:
            rows.append(list(rays))
    pick = rng.choice(N_CANDIDATES, (len(rows), 3), p=CANDIDATE_ODDS)  # mostly each ray's strongest fall
    return np.stack([np.array(rows), pick], 2)  # (t, 3, [ray, candidate])


_TRIPLES = _triples()


def _ransac(xs: np.ndarray, ys: np.ndarray, w: np.ndarray, c0: Circle, slack: float) -> Circle | None:
    """The circle through one of a fixed set of candidate triples that passes near a candidate on the most rays.

    Circles whose radius or centre strays more than slack * r from c0 are not considered.
    """
    r_i, c_i = _TRIPLES[..., 0], _TRIPLES[..., 1]
    px, py = xs[r_i, c_i], ys[r_i, c_i]
    (ax, bx, cx), (ay, by, cy) = px.T, py.T
    den = 2.0 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    ok = w > MIN_FALL
    good = (np.abs(den) > 1e-6) & ok[r_i, c_i].all(axis=1)
    den = np.where(good, den, 1.0)
    a2, b2, c2 = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
    ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / den
    uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / den
    ur = np.hypot(ax - ux, ay - uy)
    r0 = c0.r
    good &= (ur > max(0.35, 1 - slack) * r0) & (ur < (1 + slack) * r0) & (np.hypot(ux - c0.cx, uy - c0.cy) < slack * r0)
    if not good.any():
        return None
    ux, uy, ur = ux[good], uy[good], ur[good]
    dist = np.hypot(xs[None] - ux[:, None, None], ys[None] - uy[:, None, None])
    tol = np.maximum(1.0, 0.04 * ur)[:, None, None]
    close = np.maximum(1.0 - ((dist - ur[:, None, None]) / tol) ** 2, 0.0)  # MSAC: a near miss counts less
    hit = np.where(ok[None], close * np.minimum(w, 1.5)[None], 0.0)
    score = hit.max(axis=2).sum(axis=1)  # rays agreeing, weighted by how strong and how close their fall is
    k = int(np.argmax(score))
    return Circle(float(ux[k]), float(uy[k]), float(ur[k]))


def _inliers(xs: np.ndarray, ys: np.ndarray, c: Circle) -> np.ndarray:
    return np.abs(np.hypot(xs - c.cx, ys - c.cy) - c.r) <= max(1.0, 0.04 * c.r)


def _lsq_circle(x: np.ndarray, y: np.ndarray) -> Circle | None:
    """Algebraic (Kasa) least-squares circle; None with too few or degenerate points."""
    if x.size < 5:
        return None
    mx, my = x.mean(), y.mean()
    u, v = x - mx, y - my
    a = np.stack([u, v, np.ones_like(u)], 1)
    sol, *_ = np.linalg.lstsq(a, u * u + v * v, rcond=None)
    cx, cy = sol[0] / 2, sol[1] / 2
    r2 = sol[2] + cx * cx + cy * cy
    if not r2 > 0:
        return None
    return Circle(float(cx + mx), float(cy + my), float(math.sqrt(r2)))


def _ramp(x: float, lo: float, hi: float) -> float:
    return float(min(max((x - lo) / (hi - lo), 0.0), 1.0))


def _score(crop: np.ndarray, maps: tuple[np.ndarray, np.ndarray], c: Circle, rays: dict, source: Circle) -> LensFit:
    """Confidence that the fitted disc is a red reflex: rim support, redness contrast and the reflex's hue."""
    contrast = _ring_median(maps[0], c, 0.0, 0.8) - _ring_median(maps[0], c, 1.15, 1.45)
    if not math.isfinite(contrast):
        return LensFit(source, 0.0)
    support = rays["support"]
    rgb_in = crop.reshape(-1, 3)[_disc_index(crop.shape[:2], c, 0.8)].astype(np.float32)
    redness = float((np.median(rgb_in[:, 0]) + 4.0) / (np.median(rgb_in[:, 1]) + 4.0)) if rgb_in.size else 0.0
    conf = _ramp(support, 0.25, 0.6) * _ramp(contrast, 6.0, 20.0) * _ramp(redness, 1.45, 1.8)
    return LensFit(source, conf, support, contrast, redness)


def _disc_index(shape: tuple[int, int], c: Circle, frac: float) -> np.ndarray:
    """Flat indices of the pixels within frac * r of the centre."""
    ys, xs = np.ogrid[0 : shape[0], 0 : shape[1]]
    return np.flatnonzero((xs - c.cx) ** 2 + (ys - c.cy) ** 2 < (frac * c.r) ** 2)
