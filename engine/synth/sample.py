"""One synthetic sample: draw spoke geometry, measure its labels, photograph it, add label noise.

Label noise imitates grader disagreement: with probability `label_noise` each sub-label,
and independently the grade, moves one step up or down (a value at the end of its range
moves inward, so p is the real change rate). `true_*` fields keep the noise-free values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.schema import DEFAULT_SCHEMA, NUM_GRADES
from engine.synth.framing import CENTRED, check_framing, draw_framing
from engine.synth.geometry import PupilFrame, SynthError, as_spoke, draw_polar, grade_from_measurements
from engine.synth.render import Session, draw_session, place_pupil, render_image
from engine.synth.spokes import NATURAL_PRIOR, sample_spokes

MAX_ATTEMPTS = 40  # geometry re-draws when aiming at a target grade


@dataclass(frozen=True, eq=False)
class SynthSample:
    """One rendered photograph with its drawn opacity and its labels (noisy and noise-free)."""

    image: np.ndarray  # HxWx3 uint8 RGB
    opacity_mask: np.ndarray  # HxW float32 0..1, the drawn opacity before nuisances
    pupil_center: tuple[int, int]  # (x, y) px
    pupil_radius: float  # px
    sublabels: dict[str, int]  # after label noise
    true_sublabels: dict[str, int]
    grade: int  # after label noise
    true_grade: int
    area_fraction: float  # share of the pupil holding opacity, noise-free
    framing: str = CENTRED  # see synth.framing.KINDS
    lid_cover: np.ndarray | None = None  # HxW uint8 0..255, where the lids hide the scene

    @property
    def circle(self) -> tuple[float, float, float]:
        """The true lens disc (centre x, centre y, radius) in pixels of the image."""
        return float(self.pupil_center[0]), float(self.pupil_center[1]), float(self.pupil_radius)

    def lens_mask(self) -> np.ndarray:
        """HxW uint8: 255 on the visible lens, 128 on lens hidden by a lid, 0 outside the disc."""
        h, w = self.opacity_mask.shape
        ys, xs = np.ogrid[0:h, 0:w]
        cx, cy, r = self.circle
        disc = (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
        hidden = self.lid_cover >= 128 if self.lid_cover is not None else np.zeros((h, w), bool)
        return np.where(disc, np.where(hidden, 128, 255), 0).astype(np.uint8)


def _geometry(
    rng: np.random.Generator, frame: PupilFrame, target: int | None, spokes: list | None
) -> tuple[np.ndarray, dict[str, int], float, int]:
    """Draw spokes (forced, aimed at a target grade, or natural) and measure them."""
    if spokes is not None:
        values = frame.sample(draw_polar([as_spoke(s) for s in spokes], rng))
        sub, area = frame.measure(values)
        return values, sub, area, grade_from_measurements(sub, area)
    if target is None:
        aim = int(rng.choice(NUM_GRADES, p=NATURAL_PRIOR))
        attempts = 1
    else:
        aim, attempts = target, MAX_ATTEMPTS
    best = None
    for _ in range(attempts):
        values = frame.sample(draw_polar(sample_spokes(rng, aim), rng))
        sub, area = frame.measure(values)
        grade = grade_from_measurements(sub, area)
        if best is None or abs(grade - aim) < abs(best[3] - aim):
            best = (values, sub, area, grade)
        if grade == aim:
            break
    return best


def _nudge(rng: np.random.Generator, value: int, low: int, high: int, p: float) -> int:
    """With probability p move value one step, inward at the ends of [low, high]."""
    if p <= 0 or rng.uniform() >= p:
        return value
    step = 1 if value <= low else -1 if value >= high else int(rng.choice((-1, 1)))
    return value + step


def _noisy(rng: np.random.Generator, sub: dict[str, int], grade: int, p: float) -> tuple[dict[str, int], int]:
    noisy = {s.name: _nudge(rng, sub[s.name], s.minimum, s.maximum, p) for s in DEFAULT_SCHEMA.sublabels}
    return noisy, _nudge(rng, grade, 0, NUM_GRADES - 1, p)


def render_sample(
    rng: np.random.Generator,
    image_size: int = 256,
    target_grade: int | None = None,
    label_noise: float = 0.0,
    spokes: list | None = None,
    session: Session | None = None,
    framing: str = CENTRED,
) -> SynthSample:
    """Render one photograph.

    target_grade: aim geometry at this grade (re-drawn until the measured grade matches, at
    most MAX_ATTEMPTS times); None draws from a clinic-like prior. spokes: force the geometry
    instead, a list of Spoke, (angle, half_width, reach, density) tuples or mappings with
    those keys (degrees, 0 = 3 o'clock, 90 = 12 o'clock; half-width in degrees at the lens
    edge; reach 0..1 of the pupil radius from the edge inward; density 0..1); nuisances are
    still applied. session: camera look shared by a patient's eyes (drawn when None).
    framing: how the shot frames the lens (synth.framing.FRAMINGS); "centred" draws the
    classic framing exactly as before, "varied" one kind per photograph.
    """
    _check_request(image_size, target_grade, label_noise, spokes)
    check_framing(framing)
    session = session or draw_session(rng)
    if framing == CENTRED:
        shot = None
        cx, cy, radius = place_pupil(rng, image_size, session)
    else:
        shot = draw_framing(rng, image_size, session.pupil_scale, framing)
        cx, cy, radius = shot.cx, shot.cy, shot.radius
    frame = PupilFrame(image_size, cx, cy, radius)
    values, sub, area, grade = _geometry(rng, frame, target_grade, spokes)
    mask = frame.to_mask(values)
    image, cover = render_image(rng, session, mask, cx, cy, radius, shot)
    noisy_sub, noisy_grade = _noisy(rng, sub, grade, label_noise)
    lids = np.round(cover * 255.0).astype(np.uint8)
    kind = shot.kind if shot else CENTRED
    return SynthSample(image, mask, (cx, cy), radius, noisy_sub, dict(sub), noisy_grade, grade, area, kind, lids)


def _check_request(image_size: int, target_grade: int | None, label_noise: float, spokes: list | None) -> None:
    """Refuse requests the generator cannot honour, with a sentence saying why."""
    if not isinstance(image_size, (int, np.integer)) or not 32 <= image_size <= 2048:
        raise SynthError(f"image size {image_size!r} must be an integer from 32 to 2048 px")
    if target_grade is not None and target_grade not in range(NUM_GRADES):
        raise SynthError(f"target grade {target_grade!r} must be one of 0-{NUM_GRADES - 1}")
    if not 0.0 <= float(label_noise) <= 1.0:
        raise SynthError(f"label noise {label_noise!r} must be a probability from 0 to 1")
    if spokes is not None and target_grade is not None:
        raise SynthError("give either explicit spokes or a target grade, not both")
