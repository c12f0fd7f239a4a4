"""Photograph a drawn opacity mask: red reflex, iris, lids, lashes, glare, blur, noise, JPEG.

Everything here is a nuisance: nothing in this module changes the labels, which are
measured from the opacity mask before this module sees it. Sizes are given for a
256 px image and scaled with the image size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from engine.synth.framing import Framing
from engine.synth.geometry import polar_frame, pupil_window


@dataclass(frozen=True)
class Session:
    """Camera and illumination shared by the photographs of one patient's two eyes."""

    gains: tuple[float, float, float]  # white balance, R G B
    exposure: float
    gamma: float
    read_noise: float  # sensor noise in 8-bit units
    jpeg_quality: int  # 0: no compression artefacts
    blur: float  # defocus sigma in px at 256 px
    reflex: tuple[float, float, float]  # red reflex colour at the centre, linear 0..255
    iris: tuple[float, float, float]  # iris colour
    pupil_scale: float  # pupil radius / image size
    vignette: float


def draw_session(rng: np.random.Generator) -> Session:
    """Draw one patient's camera, white balance and eye colouring."""
    warm = rng.uniform(0.0, 1.0)
    return Session(
        gains=(float(rng.uniform(0.88, 1.08)), float(rng.uniform(0.85, 1.12)), float(rng.uniform(0.8, 1.25))),
        exposure=float(rng.uniform(0.75, 1.15)),
        gamma=float(rng.uniform(0.85, 1.15)),
        read_noise=float(rng.uniform(1.0, 6.0)),
        jpeg_quality=int(rng.integers(45, 96)) if rng.uniform() < 0.8 else 0,
        blur=float(rng.uniform(0.0, 1.6)),
        reflex=(float(rng.uniform(215, 250)), float(65 + 45 * warm), float(rng.uniform(25, 55))),
        iris=tuple(float(v) for v in np.array([36, 23, 16]) * rng.uniform(0.5, 1.6) * rng.uniform(0.93, 1.07, 3)),
        pupil_scale=float(rng.uniform(0.27, 0.40)),
        vignette=float(rng.uniform(0.1, 0.5)),
    )


def place_pupil(rng: np.random.Generator, size: int, session: Session) -> tuple[int, int, float]:
    """Pupil centre (x, y) and radius: size varies per eye, the centre is decentred."""
    radius = size * float(np.clip(session.pupil_scale + rng.normal(0.0, 0.02), 0.22, 0.43))
    slack = size / 2 - radius - 2
    cx, cy = (int(round(size / 2 + np.clip(rng.normal(0.0, 0.05 * size), -slack, slack))) for _ in range(2))
    return cx, cy, radius


def _low_freq(rng: np.random.Generator, size: int, cells: int, amount: float) -> np.ndarray:
    """Smooth multiplicative mottling, 1 +- amount."""
    small = rng.uniform(1.0 - amount, 1.0 + amount, (cells, cells)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


@lru_cache(maxsize=2)
def _index_frame(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Radius in quarter pixels and angle in half degrees of polar_frame(size), as lookup indices."""
    r, theta = polar_frame(size)
    r4 = (r * 4).astype(np.int32)
    t2 = (theta * 2).astype(np.int32) % 720
    r4.setflags(write=False)
    t2.setflags(write=False)
    return r4, t2


def _around(a: np.ndarray, size: int, cx: int, cy: int) -> np.ndarray:
    """The (size, size) window of a polar_frame-shaped array centred on pixel (cx, cy)."""
    return a[size - cy : 2 * size - cy, size - cx : 2 * size - cx]


def _reflex(rng: np.random.Generator, s: Session, size: int, cx: int, cy: int, radius: float) -> np.ndarray:
    """The red-orange fundus glow: brighter centre, uneven illumination, mottling (smooth, so drawn small)."""
    q = max(size // 4, 16)
    f = np.float32(q / size)
    xs = (np.arange(q, dtype=np.float32) + 0.5) / f - 0.5
    dx, dy = (xs - cx) / np.float32(radius), (cy - xs) / np.float32(radius)
    rho2 = np.minimum(dx[None, :] ** 2 + dy[:, None] ** 2, 1.0)
    a = rng.uniform(0, 2 * np.pi)
    tilt = np.float32(np.cos(a)) * dx[None, :] + np.float32(np.sin(a)) * dy[:, None]
    profile = (1.0 - np.float32(rng.uniform(0.15, 0.45)) * rho2) * (
        1.0 + np.float32(rng.uniform(-0.2, 0.2)) * np.clip(tilt, -1, 1)
    )
    profile *= _low_freq(rng, q, 6, rng.uniform(0.02, 0.08)) * _low_freq(rng, q, 24, rng.uniform(0.01, 0.04))
    centre = np.array(s.reflex, np.float32)
    edge = centre * np.array([0.85, 0.6, 0.7], np.float32)
    small = (centre + (edge - centre) * rho2[..., None]) * profile[..., None]
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)


def _half_grid(size: int) -> np.ndarray:
    """Full-resolution pixel coordinates of a half-resolution grid's pixel centres."""
    q = max(size // 2, 16)
    return (np.arange(q, dtype=np.float32) + 0.5) * np.float32(size / q) - 0.5


def _iris(
    rng: np.random.Generator, s: Session, size: int, cx: int, cy: int, radius: float, outer_edge: float | None = None
) -> np.ndarray:
    """Dark iris with radial fibres, a collarette and a pupil ruff, in a dim sclera-lid surround (drawn at half size).

    outer_edge: the iris's outer edge in pupil radii (drawn 1.7-2.3 when None).
    """
    q = max(size // 2, 16)
    f = q / size
    r4, t2 = (_around(a, q, int(round(cx * f)), int(round(cy * f))) for a in _index_frame(q))
    rho = np.arange(int(r4.max()) + 1, dtype=np.float32) / np.float32(4 * radius * f)
    outer = rng.uniform(1.7, 2.3)
    if outer_edge is not None:
        outer = outer_edge
    ring = 1.0 + 0.35 * np.exp(-(((rho - 1.35) / 0.12) ** 2)) - 0.45 * np.exp(-(((rho - 1.03) / 0.05) ** 2))
    base = np.where(rho < outer, ring, 0.55 + 0.25 * np.exp(-(rho - outer))).astype(np.float32)
    amp = np.where(rho < outer, 0.45 * ring, 0.0).astype(np.float32)
    fibres = cv2.GaussianBlur(rng.uniform(-1.0, 1.0, (1, 720)).astype(np.float32), (0, 0), sigmaX=1.2).ravel()
    shade = base[r4] + amp[r4] * fibres[t2]
    small = np.array(s.iris, np.float32) * shade[..., None]
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)


def _lids(
    rng: np.random.Generator, img: np.ndarray, cx: int, cy: int, radius: float, framing: Framing | None = None
) -> np.ndarray:
    """Upper lid (and sometimes lower lid) with its shadow, and lashes, in place (smooth maps drawn at half size).

    Returns the lids' cover (0..1, 1 where skin hides what lies behind). A framing can
    lower the upper lid into the disc or force a lower lid.
    """
    size = img.shape[0]
    k = size / 256.0
    xs = np.arange(size, dtype=np.float32)
    curve = np.float32(rng.uniform(0.1, 0.35) / radius)
    drop = rng.uniform(0.75, 1.6)
    if framing is not None and framing.lid_drop is not None:
        drop = framing.lid_drop
    lift = np.float32(cy - radius * drop)
    top = lift + curve * (xs - cx) ** 2
    skin = np.array([70, 44, 36], np.float32) * np.float32(rng.uniform(0.5, 1.2))
    rows = int(np.clip(top.max() + 1.1 * radius, 2, size))  # below this the shadow has faded
    hx = _half_grid(size)
    hy = hx[: max(int(np.searchsorted(hx, rows)), 1)]
    d = hy[:, None] - (lift + curve * (hx - cx) ** 2)[None, :]  # > 0 below the lid margin
    lid = 1.0 / (1.0 + np.exp(np.clip(d / np.float32(1.5 * k), -30, 30)))
    shadow = 1.0 - np.float32(rng.uniform(0.2, 0.6)) * np.exp(-np.maximum(d, 0) / np.float32(0.18 * radius))
    lid, shadow = (cv2.resize(m, (size, rows), interpolation=cv2.INTER_LINEAR)[..., None] for m in (lid, shadow))
    band = img[:rows]
    band *= shadow
    band += lid * (skin - band)
    cover = np.zeros((size, size), np.float32)
    cover[:rows] = lid[..., 0]
    forced = framing is not None and framing.lower_lid is not None
    if rng.uniform() < 0.5 or forced:
        depth = rng.uniform(1.2, 2.0)
        if forced:
            depth = framing.lower_lid
        bottom = cy + radius * depth - 0.2 * (xs - cx) ** 2 / radius
        first = int(np.clip(bottom.min() - 6 * k, 0, size - 1))
        below = (xs[first:, None] - bottom[None, :]) / np.float32(3 * k)
        low = (1.0 / (1.0 + np.exp(np.clip(-below, -30, 30))))[..., None]
        img[first:] += low * (skin * np.float32(0.8) - img[first:])
        np.maximum(cover[first:], low[..., 0], out=cover[first:])
    _lashes(rng, img, top, cx, radius)
    return cover


def _lashes(rng: np.random.Generator, img: np.ndarray, top: np.ndarray, cx: int, radius: float) -> None:
    """Dark curved lash silhouettes hanging from the upper lid margin."""
    size = img.shape[0]
    k = size / 256.0
    canvas = np.zeros((size, size), np.uint8)
    lowest = 0.0
    tt = np.linspace(0.0, 1.0, 8)
    for _ in range(int(rng.integers(6, 28))):
        x0 = cx + rng.uniform(-1.6, 1.6) * radius
        xi = int(np.clip(x0, 0, size - 1))
        length = rng.uniform(0.1, 0.45) * radius
        lean = rng.uniform(-0.6, 0.6) + 0.4 * (x0 - cx) / radius
        px = x0 + lean * length * tt
        py = top[xi] - 2 * k + length * (tt - rng.uniform(0.3, 0.8) * tt**2)
        lowest = max(lowest, float(py.max()))
        pts = np.stack([px, py], 1).round().astype(np.int32)
        width = max(1, int(round(rng.uniform(0.7, 1.8) * k)))
        cv2.polylines(canvas, [pts], False, 255, thickness=width, lineType=cv2.LINE_AA)
    rows = int(np.clip(lowest + 3 * k + 2, 0, size))
    lash = canvas[:rows].astype(np.float32) * np.float32(rng.uniform(0.6, 0.9) / 255.0)
    img[:rows] *= (1.0 - lash)[..., None]


def _glare(rng: np.random.Generator, img: np.ndarray, cx: int, cy: int, radius: float, mag: float = 1.0) -> None:
    """Purkinje images: small bright specular dots near the pupil centre, in place (sizes scale with `mag`)."""
    size = img.shape[0]
    k = size / 256.0 * mag
    ang = rng.uniform(0, 2 * np.pi)
    off = rng.uniform(0.0, 0.4) * radius
    spots = [(off, ang, rng.uniform(1.0, 2.5) * k, rng.uniform(150, 320))]  # P1, cornea
    spots.append((off * rng.uniform(0.5, 1.5), ang + np.pi, rng.uniform(0.7, 1.5) * k, rng.uniform(40, 140)))  # P4
    if rng.uniform() < 0.5:  # a soft halo around P1
        spots.append((off, ang, rng.uniform(4, 9) * k, rng.uniform(15, 45)))
    for dist, a, sigma, amp in spots:
        x, y = cx + dist * np.cos(a), cy - dist * np.sin(a)
        h = int(4 * sigma) + 1
        x0, x1 = max(int(x) - h, 0), min(int(x) + h + 1, size)
        y0, y1 = max(int(y) - h, 0), min(int(y) + h + 1, size)
        if x1 <= x0 or y1 <= y0:
            continue
        gx = np.exp(-(((np.arange(x0, x1) - x) / sigma) ** 2) / 2)
        gy = np.exp(-(((np.arange(y0, y1) - y) / sigma) ** 2) / 2)
        img[y0:y1, x0:x1] += (amp * gy[:, None] * gx[None, :])[..., None] * np.array([1.0, 0.97, 0.93], np.float32)


@lru_cache(maxsize=2)
def _noise_bank(size: int) -> np.ndarray:
    """Unit Gaussian noise for a (2*size, 2*size, 3) frame; each image reads a random window of it."""
    bank = np.random.default_rng(0x5EED).standard_normal((2 * size, 2 * size, 3), dtype=np.float32)
    bank.setflags(write=False)
    return bank


@lru_cache(maxsize=2)
def _vignette_shape(size: int) -> np.ndarray:
    """Squared distance from the image centre, in units of 0.75 * size."""
    r, _ = polar_frame(size)
    v = (_around(r, size, size // 2, size // 2) / np.float32(0.75 * size)) ** 2
    v.setflags(write=False)
    return v


def _camera(rng: np.random.Generator, s: Session, img: np.ndarray) -> np.ndarray:
    """Vignetting, white balance, defocus, sensor noise, tone curve and JPEG: float RGB -> uint8 RGB."""
    size = img.shape[0]
    k = size / 256.0
    gains = np.array(s.gains, np.float32) * np.float32(s.exposure * rng.uniform(0.92, 1.08))
    img *= (1.0 - np.float32(s.vignette) * _vignette_shape(size))[..., None] * gains
    sigma = (s.blur + rng.uniform(0.0, 0.5)) * k
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma)
    if size <= 512:
        oy, ox = (int(v) for v in rng.integers(0, size, 2))
        noise = _noise_bank(size)[oy : oy + size, ox : ox + size]
    else:  # a bank would cost more memory than drawing afresh
        noise = rng.standard_normal(img.shape, dtype=np.float32)
    img += noise * (np.float32(s.read_noise) + np.float32(0.04) * img)  # read noise plus shot-like noise
    out = np.clip(img, 0, 255, out=img).astype(np.uint8)
    lut = (255.0 * (np.arange(256) / 255.0) ** s.gamma).astype(np.uint8)
    out = cv2.LUT(out, lut)
    if s.jpeg_quality:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, s.jpeg_quality])
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out


def render_image(
    rng: np.random.Generator,
    session: Session,
    mask: np.ndarray,
    cx: int,
    cy: int,
    radius: float,
    framing: Framing | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Photograph the opacity mask as a retro-illumination slit-lamp image (HxWx3 uint8 RGB).

    Returns the image and the lids' cover (HxW float32, 1 where skin hides the scene).
    A framing overrides the iris size, the lids and the glare's scale.
    """
    size = mask.shape[0]
    img = _iris(rng, session, size, cx, cy, radius, framing.iris_outer if framing else None)
    reflex = _reflex(rng, session, size, cx, cy, radius)
    rows, cols = pupil_window(size, cx, cy, radius)
    dark = (np.float32(rng.uniform(0.82, 0.95)) * mask[rows, cols])[..., None]
    pupil = reflex[rows, cols]
    pupil -= dark * (pupil - np.array([14, 8, 6], np.float32))  # opacity shadows the reflex toward dark brown
    r = _around(polar_frame(size)[0], size, cx, cy)[rows, cols]
    alpha = np.minimum(np.maximum((np.float32(radius + 0.8) - r) / np.float32(1.6), 0.0), 1.0)[..., None]
    win = img[rows, cols]
    win += alpha * (pupil - win)
    cover = _lids(rng, img, cx, cy, radius, framing)
    _glare(rng, img, cx, cy, radius, framing.magnification if framing else 1.0)
    return _camera(rng, session, img), cover
