"""The input gate: checks a photograph must pass before its grade is shown, each with a reason.

`check_image(rgb)` finds the lens (or takes the clinician's circle) and checks that a
red-reflex disc is there, that the reflex is neither too dark nor blown out, that the
rim is sharp, and that the lens spans enough pixels to grade. With a model's pooled
features and its `OodScorer` (engine.ood) it also checks that the image looks like the
model's training set. Everything comes back as plain frozen data (`GateResult`), so the
app, the CLI and a CSV row can show the same sentences.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from engine import rimfit
from engine.roi import Circle, LensFit, coarse_copy, crop_to_lens, find_lens, off_image

NO_LENS = "no_lens"
UNDER_EXPOSED = "under_exposed"
OVER_EXPOSED = "over_exposed"
OUT_OF_FOCUS = "out_of_focus"
LENS_TOO_SMALL = "lens_too_small"
OUT_OF_DISTRIBUTION = "out_of_distribution"
CODES = (NO_LENS, UNDER_EXPOSED, OVER_EXPOSED, OUT_OF_FOCUS, LENS_TOO_SMALL, OUT_OF_DISTRIBUTION)


@dataclass(frozen=True)
class GateConfig:
    """The gate's limits; the defaults are calibrated on synthetic photographs (see benchmarks/bench_gate.py)."""

    min_confidence: float = 0.2  # the finder's confidence below which no red reflex is taken as found
    dark_level: float = 45.0  # the reflex's bright level (0-255) below which the photograph is under-exposed
    blown_share: float = 0.1  # share of the disc blown to yellow-white above which it is over-exposed
    max_blur: float = 0.14  # rim blur (Gaussian sigma as a share of the radius) above which it is out of focus
    min_radius_px: float = 8.0  # the smallest lens radius, in pixels of the photograph, that can be graded


@dataclass(frozen=True)
class Problem:
    """One failed check: a code (see CODES), a sentence for the user, and the measurement against its limit."""

    code: str
    reason: str
    value: float | None = None
    limit: float | None = None


@dataclass(frozen=True)
class Measures:
    """What the checks measured: the reflex's bright level (0-255), the blown share of the disc,
    the rim blur (sigma / r; NaN when the rim shows no clear step), and the OOD score (NaN without a scorer)."""

    bright: float
    blown: float
    blur: float
    ood: float = float("nan")


@dataclass(frozen=True)
class GateResult:
    """The gate's answer for one photograph; ok is False when any problem was found."""

    ok: bool
    problems: tuple[Problem, ...]
    circle: Circle | None  # the lens the checks used: the found one, or the one given
    lens: LensFit | None  # the finder's evidence (None when a circle was given)
    measures: Measures
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        return [p.reason for p in self.problems]


def check_image(
    rgb: np.ndarray,
    circle: Circle | None = None,
    config: GateConfig = GateConfig(),
    features: np.ndarray | None = None,
    ood=None,
) -> GateResult:
    """Run every check on an HxWx3 uint8 RGB photograph.

    circle: the lens in image pixels when the clinician has placed it (the finder is then
    skipped). features, ood: a model's pooled features for this image and the model's
    engine.ood.OodScorer; the out-of-distribution check runs only when both are given.
    """
    t0 = time.perf_counter()
    coarse = coarse_copy(rgb)
    lens = None
    if circle is None:
        lens = find_lens(rgb, coarse)
        circle = lens.circle
    t1 = time.perf_counter()
    problems = []
    if lens is not None and (circle is None or lens.confidence < config.min_confidence):
        problems.append(_no_lens(lens, config))
    # A blurred or tiny lens can defeat the finder too: its red, roughly found disc is still measured.
    plausible = circle is not None and (lens is None or lens.confidence >= config.min_confidence or lens.redness >= 1.6)
    view = lens_view(rgb, circle) if plausible else None
    measures = Measures(*exposure(coarse[0], view), rim_blur(view) if plausible else float("nan"))
    problems += _exposure_problems(measures, config)
    if math.isfinite(measures.blur) and measures.blur > config.max_blur:
        problems.append(Problem(OUT_OF_FOCUS, f"The photograph is out of focus: the edge of the lens is blurred over "
                                f"{100 * measures.blur:.0f} % of its radius (the limit is "
                                f"{100 * config.max_blur:.0f} %).", measures.blur, config.max_blur))
    small = _too_small(rgb, circle if plausible else None, config)
    if small is not None:
        problems.append(small)
    t2 = time.perf_counter()
    timings = {"find_ms": (t1 - t0) * 1e3, "checks_ms": (t2 - t1) * 1e3, "total_ms": (t2 - t0) * 1e3}
    result = GateResult(not problems, tuple(problems), circle, lens, measures, timings)
    return with_ood(result, features, ood) if features is not None and ood is not None else result


def with_ood(result: GateResult, features: np.ndarray, ood) -> GateResult:
    """The result with the out-of-distribution check added: the model's pooled features against its OodScorer.

    The grader calls this after its forward pass, with the features of that same pass.
    """
    t0 = time.perf_counter()
    score = float(ood.score(features))
    problems = list(result.problems)
    if score > ood.threshold:
        problems.append(Problem(OUT_OF_DISTRIBUTION, "The photograph does not look like the photographs this model "
                                f"was trained on (distance {score:.1f}, the limit is {ood.threshold:.1f}).",
                                score, float(ood.threshold)))
    timings = dict(result.timings_ms)
    timings["ood_ms"] = (time.perf_counter() - t0) * 1e3
    timings["total_ms"] = timings.get("total_ms", 0.0) + timings["ood_ms"]
    return replace(result, ok=not problems, problems=tuple(problems), measures=replace(result.measures, ood=score),
                   timings_ms=timings)


def _exposure_problems(m: Measures, config: GateConfig) -> list[Problem]:
    out = []
    if m.bright < config.dark_level:
        out.append(Problem(UNDER_EXPOSED, f"The photograph is under-exposed: the red reflex reaches only "
                           f"{m.bright:.0f} of 255, below {config.dark_level:.0f}.", m.bright, config.dark_level))
    if m.blown > config.blown_share:
        out.append(Problem(OVER_EXPOSED, f"The photograph is over-exposed: {100 * m.blown:.0f} % of the lens is blown "
                           f"out to white (the limit is {100 * config.blown_share:.0f} %).", m.blown, config.blown_share))
    return out


def _no_lens(lens: LensFit, config: GateConfig) -> Problem:
    """The no-red-reflex problem, naming the evidence that was missing."""
    if lens.circle is None:
        why = "nothing red and round stands out"
    elif lens.redness < 1.6:
        why = "the brightest round region is not red"
    elif lens.leak > 0.2:
        why = "the red region does not end at a round edge"
    elif lens.surround > 0.65:
        why = "the red disc is no brighter than what surrounds it"
    elif lens.surround < 0.05:
        why = "the red disc sits on unlit black, as a fundus camera's round field does, not inside an iris"
    else:
        why = "no round, dark-bounded red disc was found"
    return Problem(NO_LENS, f"No red-reflex disc was found ({why}): this does not look like a retro-illumination "
                   "photograph of the lens.", lens.confidence, config.min_confidence)


def _too_small(rgb: np.ndarray, circle: Circle | None, config: GateConfig) -> Problem | None:
    h, w = rgb.shape[:2]
    if circle is not None and circle.r < config.min_radius_px:
        return Problem(LENS_TOO_SMALL, f"The lens is too small to grade: its radius is {circle.r:.0f} px, "
                       f"below {config.min_radius_px:.0f} px.", circle.r, config.min_radius_px)
    if min(h, w) < 2 * config.min_radius_px:
        return Problem(LENS_TOO_SMALL, f"The image is too small to grade: {w} x {h} px cannot hold a lens of "
                       f"{config.min_radius_px:.0f} px radius.", float(min(h, w)), 2 * config.min_radius_px)
    return None


@dataclass(frozen=True, eq=False)
class LensView:
    """The lens on a crop where its radius is at most VIEW_RADIUS px: pixels (NaN-free uint8 RGB), circle, off-image mask."""

    rgb: np.ndarray
    circle: rimfit.Disc  # in crop pixels
    off: np.ndarray | None  # True where the crop lies beyond the photograph


VIEW_RADIUS = 48.0
VIEW_MARGIN = 1.7


def lens_view(rgb: np.ndarray, circle: Circle) -> LensView:
    """The crop the exposure and focus checks read: the disc and its surround, at most VIEW_RADIUS px in radius."""
    size = int(round(2 * VIEW_MARGIN * min(VIEW_RADIUS, max(circle.r, 4.0))))
    crop, box = crop_to_lens(rgb, circle, size, VIEW_MARGIN, fast=True)
    c = ((size - 1) / 2.0, (size - 1) / 2.0, circle.r * size / box.side)
    return LensView(crop, c, off_image(box, rgb.shape))


BLOWN_SPREAD = 2.0  # the whole picture's blown share counts double: the disc is at most part of it


def exposure(small: np.ndarray, view: LensView | None) -> tuple[float, float]:
    """(bright, blown): the reflex's bright level (0-255) and the share of the disc blown to yellow-white.

    small: the photograph's coarse copy. bright is the larger of the 99th percentile of its
    brightest channel and the 90th percentile of red inside the disc, so a dense cataract
    that darkens most of the disc is not taken for a dark photograph. blown is the larger
    of the disc's blown share and BLOWN_SPREAD times the whole copy's (an over-exposed
    reflex can defeat the finder, but it still whitens a good part of the picture).
    """
    bright = _percentile(small.max(axis=2).ravel(), 99)
    whole = small.reshape(-1, 3)
    blown_whole = float(np.mean((whole[:, 0] >= 250) & (whole[:, 1] >= 190)))
    if view is None:
        return bright, min(1.0, BLOWN_SPREAD * blown_whole)
    h, w = view.rgb.shape[:2]
    ys, xs = np.ogrid[0:h, 0:w]
    cx, cy, r = view.circle
    disc = (xs - cx) ** 2 + (ys - cy) ** 2 < (0.9 * r) ** 2
    px = view.rgb[disc if view.off is None else disc & ~view.off]
    bright = max(bright, _percentile(px[:, 0], 90))
    blown = float(np.mean((px[:, 0] >= 250) & (px[:, 1] >= 190))) if px.size else 0.0
    return bright, min(1.0, max(blown, BLOWN_SPREAD * blown_whole))  # a share: never above the whole disc


def _percentile(v: np.ndarray, q: float) -> float:
    """The q-th percentile (nearest rank) of a 1-D array; 0 when it is empty."""
    if v.size == 0:
        return 0.0
    k = min(int(round(q / 100 * (v.size - 1))), v.size - 1)
    return float(np.partition(v, k)[k])


def rim_blur(view: LensView) -> float:
    """The rim's blur as a Gaussian sigma over the radius (NaN when too few rays show a clear step at the rim).

    Brightness is sampled along rays across the rim of the lens view. The rays whose
    steepest fall sits near the circle are aligned, and their median profile is compared
    with itself blurred by a known amount: a sharp edge loses much of its steepest slope to
    that blur, a soft one little, and the ratio gives the edge's own sigma whatever its
    contrast and the reflex's dimming toward its edge.
    """
    # Luma, not redness: JPEG keeps colour at half resolution, which would blur every small rim.
    luma = cv2.cvtColor(view.rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    if view.off is not None:
        luma[view.off] = np.nan  # the black beyond the photograph's edge is no rim
    prof = rimfit.profiles(luma, view.circle, _BLUR_SPAN)
    prof = prof[np.isfinite(prof[:, _BLUR_CORE]).all(axis=1)]
    if prof.shape[0] < 8:
        return float("nan")
    prof = np.where(np.isfinite(prof), prof, np.nanmin(prof, axis=1, keepdims=True))  # off the image: the dark side
    at = _BLUR_RHO[np.argmax(-np.gradient(prof, axis=1)[:, _BLUR_NEAR], axis=1) + _BLUR_NEAR.start]
    step = prof[:, _BLUR_RHO < 0.8].mean(axis=1) - prof[:, _BLUR_RHO > 1.2].mean(axis=1)
    clear = (np.abs(at - 1.0) < 0.1) & (step > max(8.0, 0.4 * float(np.median(step))))
    if clear.sum() < 8:
        return float("nan")
    median = np.median(prof[clear], axis=0)
    padded = np.pad(median, _BLUR_KERNEL.size // 2, mode="edge")
    g1 = float(np.max(-np.gradient(median)[_BLUR_NEAR]))
    g2 = float(np.max(-np.gradient(np.convolve(padded, _BLUR_KERNEL, mode="valid"))[_BLUR_NEAR]))
    if g1 <= 0 or g2 <= 0:
        return float("nan")
    ratio = g1 / g2
    return BLUR_PROBE / math.sqrt(ratio * ratio - 1.0) if ratio > 1.0 + 1e-6 else 1.0


BLUR_PROBE = 0.12  # the known blur (share of r) the rim profile is compared against
_BLUR_SPAN = (0.4, 1.6)
_BLUR_RHO = np.linspace(*_BLUR_SPAN, rimfit.N_STEPS)
_BLUR_CORE = (_BLUR_RHO > 0.6) & (_BLUR_RHO < 1.15)  # a ray must be on the image here
_near = np.flatnonzero(np.abs(_BLUR_RHO - 1.0) < 0.15)
_BLUR_NEAR = slice(int(_near[0]), int(_near[-1]) + 1)
_k = BLUR_PROBE / (_BLUR_RHO[1] - _BLUR_RHO[0])
_BLUR_KERNEL = np.exp(-0.5 * (np.arange(-int(3 * _k), int(3 * _k) + 1) / _k) ** 2)
_BLUR_KERNEL /= _BLUR_KERNEL.sum()
