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

from engine import rimfit
from engine.errors import EngineError

COARSE_SIDE = 128  # long side of the coarse copy, px
FINE_RADIUS = 40.0  # the disc's radius in the fine crop, px
FINE_SIGMA = 0.5  # px of smoothing in the fine crop
FINE_MARGIN = 2.0  # the fine crop's half side in radii of the guess
LENS_MARGIN = 1.2  # the grading crop's half side in disc radii: the disc and a rim of iris
MAX_PROPOSALS = 3
CONFIDENT = 0.5  # a fit this confident ends the search over proposals
RIM_TOLERANCE = 0.02  # a fall this close to the circle (share of r) supports it
# Rim fits, each around the last: the span of radii the rays cover, and how far the circle may move.
PASSES = (((0.5, 1.6), 1.0), ((0.88, 1.12), 0.1))


class LensError(EngineError):
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

    confidence: 0..1, the product of ramps over the evidence: support, the share of the
    rim where a bright-to-dark step lies on the circle; contrast, redness inside minus
    just outside (0-255 scale); redness, red over green inside (a red reflex is above
    1.6); fill, the share of the inside with the reflex's red hue (a cataract's shadow
    keeps it); leak, the share of directions in which that hue goes on past the rim
    (a red square or a face does, a pupil in its iris does not); shown, the share of
    the rim the reflex reaches (the rest is hidden by lids; support counts the shown rim);
    surround, the brightness just outside the disc over the brightness inside (an iris is
    dim but lit, and darker than the reflex; a fundus camera's round field sits on black, about 0.01).
    """

    circle: Circle | None
    confidence: float
    support: float = 0.0
    contrast: float = 0.0
    redness: float = 0.0
    fill: float = 0.0
    leak: float = 1.0
    shown: float = 0.0
    surround: float = float("nan")


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


def _maps(view: np.ndarray, box: CropBox, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """HxWx2 float32: smoothed redness (0-255) and red hue of a view, NaN where the view lies beyond the image.

    The NaN keeps the image's own border from passing for a rim.
    """
    f = view.astype(np.float32)
    r = f[..., 0]
    red = r - 0.5 * (f[..., 1] + f[..., 2])
    luma = 0.299 * r + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    maps = cv2.GaussianBlur(np.dstack([np.maximum(red, 0.0), red / (r + 8.0), luma]), (0, 0), sigma)
    off = off_image(box, shape)
    if off is not None:
        maps[off] = np.nan
    return maps


def off_image(box: CropBox, shape: tuple[int, ...]) -> np.ndarray | None:
    """Boolean (size, size) mask of a crop's pixels that lie beyond an image of this shape; None if there are none."""
    h, w = shape[:2]
    k = box.size / box.side
    x0, x1 = (0 - box.x0) * k, (w - box.x0) * k  # the image's extent in crop pixels
    y0, y1 = (0 - box.y0) * k, (h - box.y0) * k
    if x0 <= 0 and y0 <= 0 and x1 >= box.size and y1 >= box.size:
        return None
    u = np.arange(box.size) + 0.5
    return (u[None, :] < x0) | (u[None, :] > x1) | (u[:, None] < y0) | (u[:, None] > y1)


def coarse_copy(rgb: np.ndarray) -> tuple[np.ndarray, CropBox]:
    """The photograph on a square of at most COARSE_SIDE px (black below or right of a non-square one), and its box."""
    _check_rgb(rgb)
    side = max(rgb.shape[:2])
    box = CropBox(0, 0, side, min(COARSE_SIDE, side))
    return _resample(rgb, box, fast=True), box


def find_lens(rgb: np.ndarray, coarse: tuple[np.ndarray, CropBox] | None = None) -> LensFit:
    """The red-reflex disc of a photograph, with its confidence (LensFit.circle is None if nothing fits).

    The proposals are tried in order of how sharply their red hue ends at their rim, until
    one reaches CONFIDENT. coarse: the photograph's coarse_copy, when the caller has made it.
    """
    _check_rgb(rgb)
    h, w = rgb.shape[:2]
    if min(h, w) < 8:
        return LensFit(None, 0.0)
    small, box = coarse or coarse_copy(rgb)
    maps = _maps(small, box, (h, w), 1.0)
    hue = np.ascontiguousarray(maps[..., 1])
    proposals = sorted(_proposals(small), key=lambda c: -_hue_contrast(hue, c))
    best = LensFit(None, 0.0)
    for guess in proposals[:MAX_PROPOSALS]:
        fit = _fit(rgb, small, box, maps, guess)
        if fit.confidence > best.confidence or best.circle is None:
            best = fit
        if best.confidence >= CONFIDENT:
            break
    return best


def _fit(rgb: np.ndarray, small: np.ndarray, box: CropBox, maps: np.ndarray, guess: Circle) -> LensFit:
    """Fit the rim around one proposal (on a closer crop when the disc is small in the coarse copy) and score it."""
    h, w = rgb.shape[:2]
    side = max(h, w)
    view, view_box = small, box
    if guess.r < 0.8 * FINE_RADIUS and side > box.size:  # look closer: crop the photograph around the guess
        k = side / box.size
        around = Circle(*box.to_source(guess.cx, guess.cy), guess.r * k)
        size = int(round(2 * FINE_MARGIN * min(FINE_RADIUS, max(around.r, 4.0))))
        view, view_box = crop_to_lens(rgb, around, size, FINE_MARGIN, fast=True)
        maps = _maps(view, view_box, (h, w), FINE_SIGMA)
        guess = Circle(*view_box.to_crop(around.cx, around.cy), around.r * size / view_box.side)
    c: rimfit.Disc = (guess.cx, guess.cy, guess.r)
    for span, slack in PASSES:
        fit = rimfit.fit_rim(maps, c, span, slack)
        if fit is None:
            return LensFit(None, 0.0)
        c, miss, on_image = fit
    return _score(view, view_box, maps, c, miss, on_image)


def _hue_contrast(hue: np.ndarray, c: Circle) -> float:
    """Median red hue just inside the rim minus just outside it: high for the reflex against iris or lid."""
    prof = rimfit.profiles(hue, (c.cx, c.cy, c.r), (0.3, 1.5), n_rays=24)
    k = rimfit.N_STEPS * 46 // 100  # samples below 0.85 r
    inside, outside = prof[:, :k], prof[:, -k // 2 :]
    diff = rimfit.finite_median(inside) - rimfit.finite_median(outside)
    return diff if math.isfinite(diff) else -1.0


def _proposals(small: np.ndarray) -> list[Circle]:
    """Candidate discs in coarse pixels: the largest blobs of high redness and of high red hue (found at half size)."""
    half = small if small.shape[0] < 48 else cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2),
                                                         interpolation=cv2.INTER_AREA)
    k = small.shape[0] / half.shape[0]
    red = cv2.medianBlur(redness_map(half), 3)  # the median removes glare spots
    hue8 = cv2.medianBlur(np.clip(hue_map(half) * 255.0, 0, 255).astype(np.uint8), 3)
    out: list[Circle] = []
    for img, floor in ((red, 4), (hue8, 40)):
        level, mask = cv2.threshold(img, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        if level < floor:  # hardly any red anywhere
            continue
        for b in _blobs(mask):  # the two maps often propose the same disc; keep it once
            c = Circle((b.cx + 0.5) * k - 0.5, (b.cy + 0.5) * k - 0.5, b.r * k)
            if all(math.hypot(c.cx - o.cx, c.cy - o.cy) > 0.1 * o.r or abs(c.r / o.r - 1) > 0.1 for o in out):
                out.append(c)
    return out


def _blobs(mask: np.ndarray) -> list[Circle]:
    """Discs around the largest components of a binary mask (box and area estimates)."""
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _CLOSE)
    n, _, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
    order = np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:MAX_PROPOSALS] + 1
    out = []
    for i in order:
        x, y, bw, bh, area = stats[i]
        if area < 3:
            continue
        out.append(Circle(x + (bw - 1) / 2.0, y + (bh - 1) / 2.0, max(bw, bh) / 2.0))
        if bw * bh > 1.6 * area:  # a ragged blob: its area may say more than its box
            out.append(Circle(float(cents[i][0]), float(cents[i][1]), math.sqrt(area / math.pi)))
    return out


_CLOSE = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))


def _ramp(x: float, lo: float, hi: float) -> float:
    return float(min(max((x - lo) / (hi - lo), 0.0), 1.0))


def _score(view: np.ndarray, box: CropBox, maps: np.ndarray, c: rimfit.Disc, miss: np.ndarray, seen: np.ndarray) -> LensFit:
    """The fitted disc in source pixels, with the evidence that it is a red reflex and the confidence from it.

    miss, seen: per ray of rimfit, how far its nearest fall lies from the circle (px), and
    whether the circle is on the image there.
    """
    k = box.side / box.size
    cx, cy = box.to_source(c[0], c[1])
    circle = Circle(cx, cy, c[2] * k)
    span = (0.0, max(1.6, 1.0 + 9.0 / c[2]))
    both = rimfit.profiles(maps, c, span)
    red, hue = both[..., 0], both[..., 1]
    rho = np.linspace(*span, rimfit.N_STEPS) * c[2]
    inner, edge = rho < 0.8 * c[2], (rho > 0.84 * c[2]) & (rho < 0.96 * c[2])
    outer = (rho > max(1.1 * c[2], c[2] + 2.5)) & (rho < max(1.4 * c[2], c[2] + 5.0))  # past the blur of the rim
    # Farther out for the leak: JPEG keeps colour at half resolution in 8 px blocks, so hue bleeds past a small rim.
    far = (rho > max(1.15 * c[2], c[2] + 4.0)) & (rho < max(1.5 * c[2], c[2] + 8.0))
    contrast = rimfit.finite_median(red[:, inner]) - rimfit.finite_median(red[:, outer])
    hue_in, hue_out = rimfit.finite_median(hue[:, inner]), rimfit.finite_median(hue[:, outer])
    mid = (hue_in + hue_out) / 2
    if not (math.isfinite(contrast) and math.isfinite(mid)) or not seen.any():
        return LensFit(circle, 0.0)
    with np.errstate(invalid="ignore"):
        fill = float(np.mean(hue[:, inner][np.isfinite(hue[:, inner])] > mid))
        ring = hue[:, far]
        red_share = np.sum(ring > hue_out + 0.6 * (hue_in - hue_out), axis=1) / np.maximum(
            np.sum(np.isfinite(ring), axis=1), 1
        )
        visible = seen & (rimfit.row_medians(hue[:, edge]) > mid)
    known = np.isfinite(ring).any(axis=1)
    leak = float(np.mean(red_share[known] >= 0.25)) if known.any() else 1.0
    framed = float(seen.mean())
    # Support counts the rim where the reflex reaches it: a lid or a dense spoke hides the rest.
    rim = miss <= max(RIM_TOLERANCE * c[2], 0.75)  # tight: a square's sides leave the circle within a few %
    support = float((rim & visible).sum() / max(visible.sum(), 1))
    shown = float(visible.sum() / seen.sum())
    pixels = view.astype(np.float32)
    pixels[np.isnan(maps[..., 0])] = np.nan
    rgb = rimfit.profiles(pixels, c, span, n_rays=32)
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    disc = rgb[:, inner].reshape(-1, 3)
    disc = disc[np.isfinite(disc).all(axis=1)]
    redness = float((np.median(disc[:, 0]) + 4.0) / (np.median(disc[:, 1]) + 4.0)) if disc.size else 0.0
    # A lens sits in its iris; a fundus camera's round field sits on unlit black.
    surround = rimfit.finite_median(luma[:, far]) / max(rimfit.finite_median(luma[:, inner]), 1.0)
    conf = (
        _ramp(support, 0.5, 0.75)
        * _ramp(shown, 0.3, 0.45)
        * _ramp(contrast, 6.0, 20.0)
        * _ramp(redness, 1.45, 1.8)
        * _ramp(fill, 0.5, 0.75)
        * _ramp(1.0 - leak, 0.7, 0.9)
        * _ramp(framed, 0.55, 0.75)
        * (_ramp(surround, 0.02, 0.05) * _ramp(-surround, -0.9, -0.65) if math.isfinite(surround) else 1.0)
    )
    return LensFit(circle, conf, support, contrast, redness, fill, leak, shown, surround)
