"""Opacity geometry of the synthetic generator: spokes drawn on a polar grid, then measured.

Angles are degrees as seen on the image: 0 points to 3 o'clock, 90 to 12 o'clock
(counter-clockwise). Radii are fractions of the pupil radius (rho: 0 centre, 1 lens edge
as seen through the pupil). Every sub-label is measured from the drawn Cartesian mask,
never copied from the parameters that drew it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from engine.errors import EngineError

N_RHO = 128  # polar grid rows, rho 0..1
N_THETA = 720  # polar grid columns, 0.5 degree each
PRESENCE = 0.1  # a pixel holds opacity when the drawn mask reaches this
CENTRAL_ZONE = 0.43  # central 3 mm zone as a fraction of a ~7 mm pupil's radius
CENTRAL_COVERS = 0.6  # share of the central zone that counts as "covers it"
SECTOR_MIN = 0.005  # share of a peripheral sector that counts as "holds opacity"
EDGE_ONLY_AREA = 0.02  # grade 1: opacity confined to the outer third and under 2 % of the pupil
WEDGE_RUN_DEG = 20.0  # a run this wide at the lens edge is a wedge, not a spoke
COALESCENT_RUN_DEG = 180.0  # a run this wide in the mid zone is coalescent opacity
RUN_BIN_DEG = 5


class SynthError(EngineError):
    """A synthetic-data request that cannot be honoured (bad spoke, size, count, folder)."""


@dataclass(frozen=True)
class Spoke:
    """One cortical spoke, the unit a caller can force.

    angle: direction in degrees (0 = 3 o'clock, 90 = 12 o'clock); half_width: angular
    half-width in degrees at the lens edge; reach: how far it grows inward, as a fraction
    of the pupil radius (1 reaches the centre); density: peak opacity 0..1.
    `taper` (how the width narrows toward the tip: about 0.3 a blunt band, 1.2 a pointed
    wedge) and `ragged` (irregularity of the inner edge, 0-1) shape it; callers can leave
    them at their defaults.
    """

    angle: float
    half_width: float
    reach: float
    density: float
    taper: float = 0.6
    ragged: float = 0.0

    def __post_init__(self) -> None:
        checks = [
            (math.isfinite(self.angle), "angle must be a finite number of degrees"),
            (0.2 <= self.half_width <= 180.0, "half_width must be 0.2-180 degrees"),
            (0.0 < self.reach <= 1.0, "reach must be a fraction of the pupil radius in (0, 1]"),
            (0.0 < self.density <= 1.0, "density must be in (0, 1]"),
            (0.05 <= self.taper <= 3.0, "taper must be 0.05-3"),
            (0.0 <= self.ragged <= 1.0, "ragged must be 0-1"),
        ]
        for ok, why in checks:
            if not ok:
                raise SynthError(f"spoke {self.angle, self.half_width, self.reach, self.density}: {why}")


def as_spoke(spec: object) -> Spoke:
    """Accept a Spoke, a mapping with angle/half_width/reach/density, or a 4-tuple in that order."""
    if isinstance(spec, Spoke):
        return spec
    try:
        if isinstance(spec, Mapping):
            return Spoke(**{k: float(v) for k, v in spec.items()})
        if isinstance(spec, (tuple, list)) and len(spec) == 4:
            return Spoke(*(float(v) for v in spec))
    except SynthError:
        raise
    except (TypeError, ValueError) as e:
        raise SynthError(f"spoke {spec!r} is not understood ({e})") from None
    raise SynthError(f"spoke {spec!r} must be a Spoke, a mapping or (angle, half_width, reach, density)")


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """3x^2 - 2x^3 on x clipped to 0..1 (x is overwritten)."""
    np.minimum(np.maximum(x, 0.0, out=x), 1.0, out=x)
    return x * x * (3.0 - 2.0 * x)


def _smooth_noise(rng: np.random.Generator, n: int, knots: int = 5) -> np.ndarray:
    """A smooth random curve of n samples with values in 0..1 (random knots, linear between)."""
    x = np.arange(n, dtype=np.float32) * np.float32((knots - 1) / max(n - 1, 1))
    return np.interp(x, np.arange(knots), rng.uniform(0.0, 1.0, knots)).astype(np.float32)


_PAD = N_THETA // 2  # spare columns on each side, so a spoke is drawn on one contiguous slice


def draw_polar(spokes: list[Spoke], rng: np.random.Generator) -> np.ndarray:
    """Draw the spokes on an (N_RHO, N_THETA + 1) polar opacity grid; the last column wraps."""
    clear = np.ones((N_RHO, N_THETA + 2 * _PAD), np.float32)  # 1 - opacity; spokes combine as 1 - prod(1 - o)
    for s in spokes:
        _draw_spoke(clear, s, rng)
    core = clear[:, _PAD : _PAD + N_THETA]
    core[:, :_PAD] *= clear[:, _PAD + N_THETA :]
    core[:, N_THETA - _PAD :] *= clear[:, :_PAD]
    grid = 1.0 - core
    return np.concatenate([grid, grid[:, :1]], axis=1)


_RHO = np.linspace(0.0, 1.0, N_RHO, dtype=np.float32)


def _draw_spoke(clear: np.ndarray, s: Spoke, rng: np.random.Generator) -> None:
    """Multiply one spoke's transparency (1 - opacity) into the padded polar grid in place."""
    rho_tip = 1.0 - s.reach
    row0 = int(rho_tip * (N_RHO - 1))
    rho = _RHO[row0:]
    t = np.minimum(np.maximum((rho - np.float32(rho_tip)) / np.float32(s.reach), 0.0), 1.0)  # 0 tip, 1 edge
    wobble = 0.75 + 0.5 * _smooth_noise(rng, rho.size, knots=6)  # irregular, feathery edges
    width = np.float32(s.half_width) * np.minimum(t ** np.float32(s.taper) / np.maximum(rho, 0.05), 2.5) * wobble
    max_w = 1.25 * s.half_width * min(2.5, 1.0 / max(rho_tip, 0.05))
    half_cols = min(int(math.ceil((min(max_w, 179.0) * 1.25 + 1.0) * N_THETA / 360.0)), _PAD - 1)
    c_exact = s.angle % 360.0 * N_THETA / 360.0
    c0 = int(round(c_exact))
    dtheta = np.abs(np.arange(-half_cols, half_cols + 1, dtype=np.float32) + np.float32(c0 - c_exact))
    dtheta *= np.float32(360.0 / N_THETA)
    across = _smoothstep((1.2 - dtheta[None, :] / np.maximum(width[:, None], 1e-3)) * np.float32(2.5))
    streaks = int(min(max(2 * max_w / 1.5, 3), 24))  # radial streaks inside the spoke, about 1.5 degrees apart
    fibres = 1.0 - 0.3 * _smooth_noise(rng, dtheta.size, knots=streaks)
    radial = s.density * (0.75 + 0.25 * t) * (1.0 - 0.2 * _smooth_noise(rng, rho.size, knots=7))
    fade = np.float32(1.0 / min(0.4, 0.15 / s.reach))  # the tip fades over at most 0.15 of the radius
    if s.ragged > 0:  # an irregular inner edge: the local tip moves with angle
        jag = np.float32(s.ragged) * _smooth_noise(rng, dtheta.size, knots=max(streaks, 9))
        across *= _smoothstep((t[:, None] - jag[None, :]) * fade)
        across *= radial[:, None]
    else:
        across *= (_smoothstep(t * fade) * radial)[:, None]
    across *= fibres[None, :]
    o = across
    start = _PAD + c0 - half_cols
    clear[row0:, start : start + dtheta.size] *= 1.0 - o


@lru_cache(maxsize=2)
def polar_frame(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Radius (px) and angle (degrees, 0..360) of a (2*size, 2*size) grid around its centre."""
    ys, xs = np.mgrid[0 : 2 * size, 0 : 2 * size].astype(np.float32)
    dx, dy = xs - size, size - ys
    r = np.sqrt(dx * dx + dy * dy)
    theta = np.degrees(np.arctan2(dy, dx)) % np.float32(360.0)
    r.setflags(write=False)
    theta.setflags(write=False)
    return r, theta


def pupil_window(size: int, cx: int, cy: int, radius: float) -> tuple[slice, slice]:
    """The image rows and columns that hold the pupil disc."""
    rad = int(math.ceil(radius)) + 2
    return slice(max(cy - rad, 0), min(cy + rad + 1, size)), slice(max(cx - rad, 0), min(cx + rad + 1, size))


def area_bin(area: float) -> int:
    """pupil_area_obscured from an area fraction: 0, <10, 10-25, 25-50, 50-90, >90 %."""
    if area <= 0.0:
        return 0
    return 1 if area < 0.10 else 2 if area < 0.25 else 3 if area < 0.50 else 4 if area <= 0.90 else 5


def _longest_run(occupied: np.ndarray) -> int:
    """Longest circular run of True values."""
    if occupied.all():
        return occupied.size
    if not occupied.any():
        return 0
    k = int(np.argmin(occupied))  # start the scan on an empty bin so no run wraps
    rolled = np.roll(occupied, -k).astype(np.int8)
    edges = np.diff(np.concatenate([[0], rolled, [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((stops - starts).max())


N_RUN = 360 // RUN_BIN_DEG


class PupilFrame:
    """The pupil's pixels of one image, with what measuring needs precomputed once per sample."""

    def __init__(self, size: int, cx: int, cy: int, radius: float) -> None:
        self.size, self.cx, self.cy, self.radius = size, cx, cy, float(radius)
        rows, cols = pupil_window(size, cx, cy, radius)
        r_all, theta_all = polar_frame(size)
        box = (
            slice(rows.start + size - cy, rows.stop + size - cy),
            slice(cols.start + size - cx, cols.stop + size - cx),
        )
        r_box = r_all[box]
        local = np.flatnonzero(r_box <= radius)
        width = cols.stop - cols.start
        row, col = np.divmod(local, width)
        self.index = (row + rows.start) * size + col + cols.start  # flat image indices
        theta = theta_all[box].ravel()[local]
        self.rho = r_box.ravel()[local] / np.float32(radius)
        self.map_x = theta * np.float32(N_THETA / 360.0)
        self.map_y = self.rho * np.float32(N_RHO - 1)
        run_bin = np.minimum((theta * np.float32(1 / RUN_BIN_DEG)).astype(np.intp), N_RUN - 1)  # theta >= 0
        self.sector = np.where(self.rho < CENTRAL_ZONE, 8, run_bin // (45 // RUN_BIN_DEG))
        band = (self.rho >= 0.5).astype(np.intp) + (self.rho >= 0.8)  # 0 inner, 1 mid, 2 edge
        self.run_code = band * N_RUN + run_bin
        self.sector_total = np.bincount(self.sector, minlength=9)
        self.run_total = np.bincount(self.run_code, minlength=3 * N_RUN)

    def sample(self, polar: np.ndarray) -> np.ndarray:
        """The drawn opacity at each pupil pixel, from a polar grid (see draw_polar)."""
        n = self.index.size
        width = 256
        pad = -n % width
        mx = np.pad(self.map_x, (0, pad)).reshape(-1, width)
        my = np.pad(self.map_y, (0, pad)).reshape(-1, width)
        out = cv2.remap(polar, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return out.ravel()[:n]

    def to_mask(self, values: np.ndarray) -> np.ndarray:
        """A (size, size) float32 mask holding `values` on the pupil pixels, zero elsewhere."""
        mask = np.zeros(self.size * self.size, np.float32)
        mask[self.index] = values
        return mask.reshape(self.size, self.size)

    def from_mask(self, mask: np.ndarray) -> np.ndarray:
        """The pupil pixels of an image-sized mask."""
        if mask.shape != (self.size, self.size):
            raise SynthError(f"mask shape {mask.shape} does not match a {self.size} px image")
        return np.asarray(mask, np.float32).ravel()[self.index]

    def _run_deg(self, code: np.ndarray, band: int) -> float:
        """Widest circular run of angle bins in a band where at least half the pixels hold opacity."""
        total = self.run_total[band * N_RUN : (band + 1) * N_RUN]
        hit = np.bincount(code, minlength=3 * N_RUN)[band * N_RUN : (band + 1) * N_RUN]
        return _longest_run((total > 0) & (hit * 2 >= total)) * float(RUN_BIN_DEG)

    def measure(self, values: np.ndarray) -> tuple[dict[str, int], float]:
        """The six default sub-labels and the obscured area fraction of the pupil's drawn opacity."""
        cov = values >= PRESENCE
        n_cov = int(np.count_nonzero(cov))
        if n_cov == 0:
            return dict.fromkeys(SUBLABEL_ORDER, 0), 0.0
        area = n_cov / max(self.index.size, 1)
        hit_sector = np.bincount(self.sector[cov], minlength=9)
        n_central = int(hit_sector[8])
        central_share = n_central / max(int(self.sector_total[8]), 1)
        hit8, tot8 = hit_sector[:8], self.sector_total[:8]
        sectors = int(np.count_nonzero((hit8 > 0) & (hit8 >= SECTOR_MIN * tot8)))
        depth = 1.0 - float(self.rho[cov].min())
        held = values[cov]
        k = int(0.8 * (held.size - 1))
        dens = float(np.partition(held, k)[k])
        code = self.run_code[cov]
        mid_run, edge_run = self._run_deg(code, 1), self._run_deg(code, 2)
        sub = {
            "central_involvement": 0 if n_central == 0 else (2 if central_share >= CENTRAL_COVERS else 1),
            "pupil_area_obscured": area_bin(area),
            "sectors_involved": sectors,
            "radial_extent": 1 if depth <= 1 / 3 else (2 if depth <= 2 / 3 else 3),
            "opacity_density": 1 if dens < 0.35 else (2 if dens < 0.6 else 3),
            "morphology": 3 if mid_run >= COALESCENT_RUN_DEG else (2 if edge_run >= WEDGE_RUN_DEG else 1),
        }
        return sub, area


def measure_mask(mask: np.ndarray, center: tuple[int, int], radius: float) -> tuple[dict[str, int], float]:
    """Measure sub-labels and area fraction of an image-sized opacity mask around a pupil."""
    frame = PupilFrame(mask.shape[0], int(center[0]), int(center[1]), radius)
    return frame.measure(frame.from_mask(mask))


SUBLABEL_ORDER = (
    "central_involvement",
    "pupil_area_obscured",
    "sectors_involved",
    "radial_extent",
    "opacity_density",
    "morphology",
)


def grade_from_measurements(sublabels: Mapping[str, int], area_fraction: float) -> int:
    """The monotone grade rule (0-7) from noise-free measurements; the highest rule that fires wins.

    0 no opacity. 7 area > 90 % or coalescent. 6 area >= 75 % or (covers the central
    zone and density >= moderate). 5 area >= 50 %. 4 area >= 25 % or any central
    involvement. 3 area >= 10 % or 3+ sectors (the rule's gap, < 10 % over 3+ sectors,
    is read as grade 3 so that more sectors never lowers a grade). 1 "lens edge only":
    opacity confined to the outer third of the radius and under 2 % of the pupil.
    2 any other opacity (< 10 %, <= 2 sectors, no central involvement). Raising any
    measurement never lowers the grade.
    """
    s = sublabels
    a = float(area_fraction)
    if a <= 0.0:
        return 0
    if a > 0.90 or s["morphology"] >= 3:
        return 7
    if a >= 0.75 or (s["central_involvement"] >= 2 and s["opacity_density"] >= 2):
        return 6
    if a >= 0.50:
        return 5
    if a >= 0.25 or s["central_involvement"] >= 1:
        return 4
    if a >= 0.10 or s["sectors_involved"] >= 3:
        return 3
    if s["radial_extent"] <= 1 and a < EDGE_ONLY_AREA:
        return 1
    return 2
