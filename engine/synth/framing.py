"""How the photograph frames the lens: where the pupil sits, how large it is, what covers it.

"centred" is the generator's classic framing (a large, nearly centred pupil) and draws
exactly what it always drew. The other kinds imitate shots a clinic also takes, so the
lens finder and the crop can be measured on them: off-centre, zoomed out, a small
(miotic) pupil, a close-up that nearly fills the frame, and an upper lid that hangs into
the disc. "varied" draws one of them per photograph. Nothing here changes the labels:
they are measured on the whole lens, also where a lid hides it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.synth.geometry import SynthError

CENTRED = "centred"
VARIED = "varied"
KINDS = (CENTRED, "off_centre", "zoomed_out", "small_pupil", "close_up", "lid")
FRAMINGS = (*KINDS, VARIED)
# Share of each kind under "varied": most shots are still well framed.
MIX = (0.35, 0.18, 0.15, 0.1, 0.08, 0.14)
TYPICAL_SCALE = 0.335  # pupil radius / image side of the classic framing, the unit of `magnification`


@dataclass(frozen=True)
class Framing:
    """One photograph's framing: pupil centre (x, y) and radius in px, and what the renderer overrides.

    iris_outer: the iris's outer edge in pupil radii (None: the renderer draws 1.7-2.3);
    lid_drop: the upper lid margin's height above the pupil centre in pupil radii (below 1
    it covers the top of the disc; None: drawn 0.75-1.6); lower_lid: the same below the
    centre (None: drawn); magnification: optical scale against the classic framing, for
    the size of glare spots.
    """

    kind: str
    cx: int
    cy: int
    radius: float
    iris_outer: float | None = None
    lid_drop: float | None = None
    lower_lid: float | None = None
    magnification: float = 1.0


def check_framing(framing: str) -> str:
    """The framing name, or a SynthError listing the choices."""
    if framing not in FRAMINGS:
        raise SynthError(f"framing {framing!r} must be one of {', '.join(FRAMINGS)}")
    return framing


def draw_framing(rng: np.random.Generator, size: int, pupil_scale: float, framing: str) -> Framing:
    """Draw a framing of the named kind ("varied": a kind from MIX) for a size x size image.

    A centred shot drawn here follows the classic framing's distribution; render_sample
    asked for "centred" itself makes render.place_pupil's draws, so old seeds keep their pixels.
    """
    kind = KINDS[int(rng.choice(len(KINDS), p=MIX))] if framing == VARIED else check_framing(framing)
    if kind == "zoomed_out":
        frac = rng.uniform(0.075, 0.2)  # pupil diameter 15-40 % of the frame
    elif kind == "small_pupil":
        frac = rng.uniform(0.1, 0.2)
    elif kind == "close_up":
        frac = rng.uniform(0.4, 0.45)  # diameter up to 90 % of the frame
    elif kind == "off_centre":  # a somewhat smaller pupil, so it has room to move
        frac = rng.uniform(0.18, 0.32)
    else:
        frac = float(np.clip(pupil_scale + rng.normal(0.0, 0.02), 0.22, 0.43))
    radius = float(size * frac)
    cx, cy = _centre(rng, size, radius, kind)
    mag = radius / (TYPICAL_SCALE * size) if kind in ("zoomed_out", "close_up") else 1.0
    iris = float(rng.uniform(2.6, 4.0)) if kind == "small_pupil" else None
    lid = low = None
    if iris is not None:  # the eye keeps its size around a small pupil, so the lid sits farther off
        lid = float(rng.uniform(0.75, 1.6) * iris / 2.0)
    if kind == "lid":
        lid = float(rng.uniform(0.35, 0.8))  # the margin hides 10-33 % of the diameter at the centre
        low = float(rng.uniform(0.75, 0.95)) if rng.uniform() < 0.25 else None  # and now and then the lower lid
    return Framing(kind, cx, cy, radius, iris, lid, low, mag)


def _centre(rng: np.random.Generator, size: int, radius: float, kind: str) -> tuple[int, int]:
    """Pupil centre: the whole disc stays inside the frame, 2 px from its edge."""
    slack = max(size / 2 - radius - 2, 0.0)
    if kind == "off_centre":  # well away from the middle: at least 45 % of the room in one axis
        off = rng.uniform(-slack, slack, 2)
        axis = int(rng.integers(2))
        off[axis] = np.sign(off[axis] or 1.0) * rng.uniform(0.45, 1.0) * slack
    elif kind == "zoomed_out":
        off = rng.uniform(-0.8 * slack, 0.8 * slack, 2)
    else:
        off = np.clip(rng.normal(0.0, 0.05 * size, 2), -slack, slack)
    return int(round(size / 2 + off[0])), int(round(size / 2 + off[1]))
