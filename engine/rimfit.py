"""Fit a circle to the rim of a bright disc: rays from a centre, the falls along them, RANSAC, least squares.

Used by engine.roi. Every function works in the pixels of one small view (a downscaled
copy or a crop) and takes circles as (cx, cy, r) tuples of floats.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

N_RAYS = 72
N_STEPS = 40
N_CANDIDATES = 3  # rim candidates per ray: its strongest falls of redness
CANDIDATE_ODDS = (0.6, 0.25, 0.15)  # how often a RANSAC sample takes a ray's first, second, third candidate
N_TRIPLES = 256
MIN_FALL = 0.2  # a rim candidate falls at least this share of a typical ray's strongest fall
LANDING = 3  # profile samples past a fall where its landing level is read
_WINDOW = np.ones((1, 7), np.uint8)
_ANGLES = np.linspace(0.0, 2.0 * np.pi, N_RAYS, endpoint=False)
_COS, _SIN = np.cos(_ANGLES).astype(np.float32), np.sin(_ANGLES).astype(np.float32)

Disc = tuple[float, float, float]


@lru_cache(maxsize=32)
def _ray_grid(span: tuple[float, float], n_rays: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-radius ray offsets (x, y) of shape (n_rays, N_STEPS), y pointing down the image."""
    rho = np.linspace(span[0], span[1], N_STEPS, dtype=np.float32)
    ang = np.linspace(0.0, 2.0 * np.pi, n_rays, endpoint=False)
    ux = (np.cos(ang).astype(np.float32)[:, None] * rho[None, :]).astype(np.float32)
    uy = (-np.sin(ang).astype(np.float32)[:, None] * rho[None, :]).astype(np.float32)
    ux.setflags(write=False)
    uy.setflags(write=False)
    return ux, uy


def profiles(img: np.ndarray, c: Disc, span: tuple[float, float], n_rays: int = N_RAYS) -> np.ndarray:
    """img (HxW or HxWxC float32) along rays from the centre (rows) at radii span * r (N_STEPS columns).

    Samples off the image are NaN.
    """
    cx, cy, r = c
    ux, uy = _ray_grid(tuple(span), n_rays)
    mx = ux * np.float32(r) + np.float32(cx)
    my = uy * np.float32(r) + np.float32(cy)
    return cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))


def finite_median(a: np.ndarray) -> float:
    """Median (upper middle) of the finite values of a (NaN when there are none); faster than np.nanmedian."""
    v = a[np.isfinite(a)]
    if not v.size:
        return float("nan")
    k = v.size // 2
    return float(np.partition(v, k)[k])


def row_medians(a: np.ndarray) -> np.ndarray:
    """Median of each row's finite values (NaN for a row without any), vectorised."""
    s = np.sort(a, axis=1)  # NaN sorts last
    k = np.isfinite(a).sum(axis=1)
    rows = np.arange(a.shape[0])
    lo, hi = np.maximum((k - 1) // 2, 0), np.maximum(k // 2, 0)
    hi = np.minimum(hi, a.shape[1] - 1)
    return np.where(k > 0, 0.5 * (s[rows, lo] + s[rows, hi]), np.nan)


def _levels(prof: np.ndarray) -> tuple[float, float]:
    """About the 5th and 95th percentiles of a profile array's finite samples (every third sample)."""
    finite = prof.ravel()[::3]
    finite = finite[np.isfinite(finite)]
    if finite.size < 20:
        return 0.0, 0.0
    k5, k95 = finite.size // 20, finite.size - 1 - finite.size // 20
    low, high = np.partition(finite, (k5, k95))[[k5, k95]]
    return float(low), float(high)


def _landing(prof: np.ndarray) -> np.ndarray:
    """0..1 for each fall position of a profile: how close to its darkest level the value is just past it."""
    low, high = _levels(prof)
    if high <= low:
        return np.zeros((prof.shape[0], N_STEPS - 2), np.float32)
    after = np.empty((prof.shape[0], N_STEPS - 2), np.float32)
    shift = 1 + LANDING
    after[:, : N_STEPS - 2 - LANDING + 1] = prof[:, shift:]
    after[:, N_STEPS - 2 - LANDING + 1 :] = prof[:, -1:]
    after[np.isnan(after)] = low
    return np.clip(1.0 - (after - low) / (high - low), 0.0, 1.0)


def falls(maps: np.ndarray, c: Disc, span: tuple[float, float], use_luma: bool = False) -> tuple[np.ndarray, ...]:
    """The strongest outward falls of redness on each ray: x, y (view px) and weight, (N_RAYS, N_CANDIDATES).

    The weight is the fall's size times how close to the darkest redness and the lowest hue
    it lands: the rim falls to the iris, while the edge of a bright centre inside a shadowed
    disc (a dense cataract) lands on the shadow, which keeps the reflex's red hue.
    maps: HxWx2 float32, redness and red hue.
    """
    both = profiles(maps, c, span)
    red_p, hue_p = both[..., 0], both[..., 1]
    edge_p = both[..., 2] if use_luma else red_p
    d = edge_p[:, :-2] - edge_p[:, 2:]  # positive where the value falls outward, centred on samples 1..N-2
    d[np.isnan(d)] = 0.0
    # Maxima over a window of samples only, so one blurred, noisy edge gives one candidate.
    peak = np.where((d >= cv2.dilate(d, _WINDOW)) & (d > 0), d, 0.0) * _landing(red_p) * _landing(hue_p)
    idx = np.argsort(-peak, axis=1)[:, :N_CANDIDATES]
    weight = np.take_along_axis(peak, idx, 1)
    i0 = np.clip(idx, 1, peak.shape[1] - 2)
    a, b, e = (np.take_along_axis(d, i0 + k, 1) for k in (-1, 0, 1))  # parabola through the raw falls
    den = a - 2 * b + e
    off = np.clip(0.5 * (a - e) / np.where(np.abs(den) > 1e-6, den, np.inf), -0.5, 0.5)
    step = (span[1] - span[0]) / (N_STEPS - 1)
    radius = (span[0] + (i0 + off + 1.0) * step) * c[2]
    return c[0] + _COS[:, None] * radius, c[1] - _SIN[:, None] * radius, weight


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
    return np.array(rows) * N_CANDIDATES + pick  # flat indices into (N_RAYS, N_CANDIDATES)


_TRIPLES = _triples()


def ransac(xs: np.ndarray, ys: np.ndarray, w: np.ndarray, c0: Disc, slack: float) -> Disc | None:
    """The circle through one of a fixed set of candidate triples that the strongest, closest falls agree with.

    MSAC scoring: each ray adds its best candidate's weight times 1 - (miss / tolerance)^2.
    Circles whose radius or centre strays more than slack * r from c0 are not considered.
    """
    fx, fy, fw = xs.ravel(), ys.ravel(), w.ravel()
    px, py = fx[_TRIPLES], fy[_TRIPLES]
    (ax, bx, cx), (ay, by, cy) = px.T, py.T
    den = 2.0 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    good = (np.abs(den) > 1e-6) & (fw[_TRIPLES] > MIN_FALL).all(axis=1)
    den = np.where(good, den, 1.0)
    a2, b2, c2 = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
    ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / den
    uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / den
    ur = np.hypot(ax - ux, ay - uy)
    x0, y0, r0 = c0
    good &= (ur > max(0.35, 1 - slack) * r0) & (ur < (1 + slack) * r0) & (np.hypot(ux - x0, uy - y0) < slack * r0)
    if not good.any():
        return None
    ux, uy, ur = (v[good].astype(np.float32)[:, None] for v in (ux, uy, ur))
    miss = (np.hypot(fx[None] - ux, fy[None] - uy) - ur) / np.maximum(1.0, 0.04 * ur)
    close = np.maximum(1.0 - miss * miss, 0.0) * np.minimum(np.where(fw > MIN_FALL, fw, 0.0), 1.5)[None]
    score = close.reshape(close.shape[0], N_RAYS, N_CANDIDATES).max(axis=2).sum(axis=1)
    k = int(np.argmax(score))
    return float(ux[k, 0]), float(uy[k, 0]), float(ur[k, 0])


def rim_points(xs: np.ndarray, ys: np.ndarray, ok: np.ndarray, c: Disc) -> np.ndarray:
    """Boolean (N_RAYS, N_CANDIDATES): each ray's usable candidate nearest the circle, if within tolerance."""
    res = np.abs(np.hypot(xs - c[0], ys - c[1]) - c[2])
    res = np.where(ok, res, np.inf)
    best = np.argmin(res, axis=1)
    pick = np.zeros_like(ok)
    rows = np.arange(N_RAYS)
    pick[rows, best] = res[rows, best] <= max(1.0, 0.04 * c[2])
    return pick


def lsq_circle(x: np.ndarray, y: np.ndarray) -> Disc | None:
    """Algebraic (Kasa) least-squares circle; None with too few or degenerate points."""
    if x.size < 5:
        return None
    mx, my = float(x.mean()), float(y.mean())
    u, v = x - mx, y - my
    suu, svv, suv = float(u @ u), float(v @ v), float(u @ v)
    z = u * u + v * v
    rhs = np.array([float(u @ z), float(v @ z)]) / 2.0
    det = suu * svv - suv * suv
    if abs(det) < 1e-9:
        return None
    cx = (rhs[0] * svv - rhs[1] * suv) / det
    cy = (rhs[1] * suu - rhs[0] * suv) / det
    r2 = cx * cx + cy * cy + (suu + svv) / x.size
    return (cx + mx, cy + my, math.sqrt(r2)) if r2 > 0 else None


def fit_rim(maps: np.ndarray, c: Disc, span: tuple[float, float], slack: float) -> tuple[Disc, np.ndarray, np.ndarray] | None:
    """A circle through the rim candidates near c: RANSAC (unless slack < 0.15: then the candidates
    nearest c), refined by least squares. maps: HxWx2 float32, redness and red hue.

    Returns the circle, each ray's miss (distance from the circle to its nearest usable
    candidate, in px; inf without one) and which rays meet the circle on the image.
    """
    xs, ys, w = falls(maps, c, span, use_luma=slack < 0.15)
    w = w / max(float(np.median(w[:, 0])), 1e-6)
    ok = w > MIN_FALL
    if ok[:, 0].sum() < 6:
        return None
    fitted = ransac(xs, ys, w, c, slack) if slack >= 0.15 else c
    if fitted is None:
        return None
    for _ in range(1 if slack >= 0.15 else 2):
        pick = rim_points(xs, ys, ok, fitted)
        fitted = lsq_circle(xs[pick], ys[pick]) or fitted
    if abs(fitted[2] / c[2] - 1) > slack or math.hypot(fitted[0] - c[0], fitted[1] - c[1]) > slack * c[2]:
        return None
    miss = np.where(ok, np.abs(np.hypot(xs - fitted[0], ys - fitted[1]) - fitted[2]), np.inf).min(axis=1)
    h, w_ = maps.shape[:2]
    rx, ry = fitted[0] + _COS * fitted[2], fitted[1] - _SIN * fitted[2]
    inside = (rx >= 1) & (rx <= w_ - 2) & (ry >= 1) & (ry <= h - 2)
    on_image = np.zeros(N_RAYS, bool)
    ix, iy = np.clip(rx, 0, w_ - 1).astype(int), np.clip(ry, 0, h - 1).astype(int)
    on_image[inside] = np.isfinite(maps[iy[inside], ix[inside], 0])
    return fitted, miss, on_image
