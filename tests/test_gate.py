"""The input gate: retro-illumination photographs pass, everything else is flagged with a reason."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from negatives import NEGATIVES, sample_photos, spoil

from engine.gate import (
    LENS_TOO_SMALL,
    NO_LENS,
    OUT_OF_DISTRIBUTION,
    OUT_OF_FOCUS,
    OVER_EXPOSED,
    UNDER_EXPOSED,
    GateResult,
    check_image,
)
from engine.roi import Circle
from engine.synth.framing import KINDS
from engine.synth.sheet import render_sample

SEED = 5151  # not a seed the gate was tuned on


def _photo(i: int, size: int = 160, kind: str = "varied"):
    return render_sample(np.random.default_rng([SEED, i]), size, target_grade=i % 8, framing=kind)


def test_retro_illumination_photographs_pass():
    flagged = []
    for i in range(30):
        s = _photo(i, (128, 160, 224)[i % 3], KINDS[i % len(KINDS)])
        res = check_image(s.image)
        if not res.ok:
            flagged.append((i, s.framing, res.reasons))
        assert isinstance(res, GateResult) and res.timings_ms["total_ms"] > 0
    assert len(flagged) <= 1, flagged  # the goal is under 2 %; thirty tiny photographs allow one


@pytest.mark.parametrize("kind", sorted(NEGATIVES))
def test_every_negative_kind_is_flagged_with_a_reason(kind):
    missed = []
    for i in range(4):
        img = NEGATIVES[kind](np.random.default_rng([SEED, i]), (96, 128, 192, 256)[i])
        res = check_image(img)
        if res.ok:
            missed.append(i)
        for p in res.problems:
            assert p.reason.endswith(".") and len(p.reason) > 30
    # Red shapes are the extra, adversarial kind: red, bounded and dark-surrounded; one may pass.
    assert len(missed) <= (1 if kind == "red_shapes" else 0), missed


def test_sample_photographs_are_flagged():
    pytest.importorskip("matplotlib")
    photos = list(sample_photos())
    assert len(photos) >= 3
    for name, img in photos:
        res = check_image(img)
        assert not res.ok and res.problems[0].code == NO_LENS, (name, res.reasons)


@pytest.mark.parametrize(
    ("fault", "codes"),
    [
        ("under_exposed", {UNDER_EXPOSED}),
        ("over_exposed", {OVER_EXPOSED}),
        ("out_of_focus", {OUT_OF_FOCUS}),
        ("tiny", {LENS_TOO_SMALL, NO_LENS}),
    ],
)
def test_spoiled_photographs_name_their_fault(fault, codes):
    rng = np.random.default_rng(SEED)
    named = 0
    for i in range(4):
        s = _photo(100 + i, 192, "centred")
        res = check_image(spoil(s.image, fault, rng, s.pupil_radius))
        assert not res.ok, fault
        named += bool(codes & {p.code for p in res.problems})
    # A heavy blur can hide the rim from the finder too; then the photograph is flagged for no lens.
    assert named >= (3 if fault == "out_of_focus" else 4), (fault, named)


def test_a_given_circle_skips_the_finder_and_a_tiny_one_is_too_small():
    s = _photo(7, 160, "centred")
    res = check_image(s.image, circle=Circle(*s.circle))
    assert res.ok and res.lens is None and res.circle == Circle(*s.circle)
    small = check_image(s.image, circle=Circle(s.circle[0], s.circle[1], 5.0))
    assert [p.code for p in small.problems] == [LENS_TOO_SMALL]
    assert small.problems[0].value == 5.0 and "5 px" in small.problems[0].reason
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.ok = False  # plain frozen data across the boundary


def test_measures_follow_the_photograph():
    s = _photo(3, 192, "centred")
    good = check_image(s.image).measures
    dark = check_image((s.image // 10).astype(np.uint8)).measures
    assert dark.bright < 0.2 * good.bright
    assert 0.0 < good.blur < 0.14 and good.blown < 0.01


class _Stub:
    """An OOD scorer stand-in: scores the first feature, threshold 1."""

    threshold = 1.0

    def score(self, features):
        return float(features[0])


def test_out_of_distribution_features_are_flagged_only_when_a_scorer_is_given():
    s = _photo(11, 160, "centred")
    assert check_image(s.image).ok
    near = check_image(s.image, features=np.array([0.5]), ood=_Stub())
    far = check_image(s.image, features=np.array([3.0]), ood=_Stub())
    assert near.ok and near.measures.ood == 0.5
    assert [p.code for p in far.problems] == [OUT_OF_DISTRIBUTION] and "3.0" in far.problems[0].reason


def test_a_white_picture_is_over_exposed_by_at_most_the_whole_lens():
    white = np.full((200, 260, 3), 255, np.uint8)
    result = check_image(white)
    over = [p for p in result.problems if p.code == OVER_EXPOSED]
    assert result.measures.blown == 1.0 and over and "100 % of the lens" in over[0].reason
