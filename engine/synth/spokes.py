"""Spoke geometry drawn per target grade: each recipe aims at one grade; the caller measures.

The recipes only aim. The grade that counts is always the one measured from the drawn
mask (see synth.geometry.measure_mask), so a recipe that misses simply yields another grade.
"""

from __future__ import annotations

import numpy as np

from engine.synth.geometry import Spoke

# Share of each grade aimed at when grades are not balanced: a clinic sees many eyes
# with little or no cortical opacity and few with coalescent cataract.
NATURAL_PRIOR = (0.17, 0.15, 0.15, 0.13, 0.12, 0.10, 0.09, 0.09)
NEIGHBOUR_SHARE = 0.5


def _density(rng: np.random.Generator, low: float = 0.12, high: float = 0.95) -> float:
    """A per-eye base density; faint opacities are as common as dense ones."""
    return float(rng.uniform(low, high))


def _spokes(
    rng: np.random.Generator,
    n: int,
    centre: float,
    window: float,
    hw: tuple[float, float],
    reach: tuple[float, float],
    dens: float,
    taper: tuple[float, float] = (0.6, 1.0),
    ragged: float = 0.0,
) -> list[Spoke]:
    """n spokes with angles inside `window` degrees around `centre`."""
    out = []
    for _ in range(n):
        out.append(
            Spoke(
                angle=float((centre + rng.uniform(-window / 2, window / 2)) % 360.0),
                half_width=float(rng.uniform(*hw)),
                reach=float(rng.uniform(*reach)),
                density=min(max(dens * rng.uniform(0.75, 1.2), 0.12), 1.0),
                taper=float(rng.uniform(*taper)),
                ragged=float(rng.uniform(0.0, ragged)),
            )
        )
    return out


def _ring(
    rng: np.random.Generator,
    n: int,
    hw: tuple[float, float],
    reach: tuple[float, float],
    dens: float,
    taper: tuple[float, float] = (0.7, 1.2),
) -> list[Spoke]:
    """n spokes spread around the whole circumference, unevenly."""
    start = rng.uniform(0, 360)
    step = 360.0 / n
    out = _spokes(rng, n, 0.0, 0.0, hw, reach, dens, taper)
    return [
        Spoke((start + i * step + rng.uniform(-0.35, 0.35) * step) % 360.0, s.half_width, s.reach, s.density, s.taper)
        for i, s in enumerate(out)
    ]


def _grade1(rng: np.random.Generator) -> list[Spoke]:
    n = int(rng.integers(1, 4))
    return _spokes(rng, n, rng.uniform(0, 360), rng.uniform(4, 30), (1.5, 4.0), (0.08, 0.3), _density(rng, 0.12, 0.85))


def _grade2(rng: np.random.Generator) -> list[Spoke]:
    d = _density(rng, 0.12, 0.9)
    centre = rng.uniform(0, 360)
    long = _spokes(rng, 1, centre, 10, (1.5, 5.0), (0.36, 0.54), d)
    return long + _spokes(rng, int(rng.integers(0, 3)), centre, rng.uniform(10, 40), (1.2, 5.0), (0.1, 0.5), d)


def _grade3(rng: np.random.Generator) -> list[Spoke]:
    d = _density(rng, 0.15, 0.95)
    if rng.uniform() < 0.4:  # a few small spokes spread over 3+ sectors
        n = int(rng.integers(3, 7))
        return _spokes(rng, n, rng.uniform(0, 360), rng.uniform(120, 360), (1.2, 4.0), (0.1, 0.5), d)
    return _ring(rng, int(rng.integers(4, 11)), (4.0, 15.0), (0.3, 0.56), d)


def _grade4(rng: np.random.Generator) -> list[Spoke]:
    d = _density(rng, 0.2, 0.95)
    if rng.uniform() < 0.5:  # one or two spokes reach the central zone
        base = _ring(rng, int(rng.integers(2, 7)), (2.5, 9.0), (0.2, 0.5), d)
        return base + _spokes(rng, int(rng.integers(1, 3)), rng.uniform(0, 360), 120, (2.0, 6.0), (0.62, 0.9), d)
    return _ring(rng, int(rng.integers(6, 11)), (8.0, 16.0), (0.42, 0.75), d, taper=(0.6, 1.0))


def _converging(rng: np.random.Generator, d: float) -> list[Spoke]:
    """Long wedges from all round the edge that meet over the central zone."""
    n = int(rng.integers(6, 10))
    return _ring(rng, n, (0.25 * 360 / n, 0.38 * 360 / n), (0.92, 1.0), d, taper=(0.5, 0.9))


def _grade5(rng: np.random.Generator) -> list[Spoke]:
    if rng.uniform() < 0.35:  # the centre is covered, but too faintly for grade 6
        return _converging(rng, _density(rng, 0.15, 0.4))
    d = _density(rng, 0.25, 0.95)
    n = int(rng.integers(6, 10))
    return _ring(rng, n, (0.3 * 360 / n, 0.42 * 360 / n), (0.55, 0.85), d, taper=(0.5, 0.9))


def _grade6(rng: np.random.Generator) -> list[Spoke]:
    d = _density(rng, 0.4, 1.0)
    if rng.uniform() < 0.3:  # a partial sheet short of coalescence, with spokes over the centre
        half = float(rng.uniform(45, 90))
        sheet = Spoke(rng.uniform(0, 360), half, float(rng.uniform(0.5, 0.8)), d, 0.1, float(rng.uniform(0.2, 0.5)))
        return [sheet, *_converging(rng, d)]
    return _converging(rng, d)


def _grade7(rng: np.random.Generator) -> list[Spoke]:
    d = _density(rng, 0.3, 1.0)
    centre = rng.uniform(0, 360)
    if rng.uniform() < 0.3:  # almost the whole pupil
        sheet = [Spoke(centre, 179.0, float(rng.uniform(0.93, 1.0)), d, 0.1, 0.0)]
    else:  # spokes merged into a sheet over much of the periphery, spokes beyond its edge
        half = rng.uniform(80, 170)
        sheet = [Spoke(centre, float(half), float(rng.uniform(0.55, 0.85)), d, 0.1, float(rng.uniform(0.2, 0.5)))]
    return sheet + _ring(rng, int(rng.integers(4, 10)), (4.0, 12.0), (0.3, 0.95), d)


RECIPES = (lambda rng: [], _grade1, _grade2, _grade3, _grade4, _grade5, _grade6, _grade7)


def sample_spokes(rng: np.random.Generator, grade: int) -> list[Spoke]:
    """Spoke geometry aimed at `grade` (0-7).

    A share of draws borrows a neighbouring grade's recipe, so that the draws which still
    measure as `grade` sit near its thresholds and neighbouring grades meet instead of
    forming separate clusters.
    """
    recipe = grade
    if grade >= 1 and rng.uniform() < NEIGHBOUR_SHARE:
        recipe = min(max(grade + (1 if rng.uniform() < 0.5 else -1), 1), len(RECIPES) - 1)
    return RECIPES[recipe](rng)
