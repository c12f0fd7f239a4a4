"""The lens finder and the crop: circles found on synthetic photographs, crop boxes that map back exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.roi import Circle, CropBox, LensError, crop_to_lens, find_lens, lens_box, paste_back
from engine.synth.framing import KINDS
from engine.synth.sheet import render_sample

SEED = 4242  # not a seed the finder was tuned on


def test_circle_iou_is_exact():
    a = Circle(10.0, 10.0, 5.0)
    assert a.iou(a) == pytest.approx(1.0)
    assert a.iou(Circle(30.0, 10.0, 5.0)) == 0.0
    assert a.iou(Circle(10.0, 10.0, 2.5)) == pytest.approx(0.25)  # nested: area ratio
    # Two unit discs one radius apart: the lens-shaped overlap has a closed form.
    inter = 2 * math.acos(0.5) - 0.5 * math.sqrt(3)
    assert Circle(0, 0, 1).iou(Circle(1, 0, 1)) == pytest.approx(inter / (2 * math.pi - inter))


def test_crop_box_is_the_square_around_the_disc_and_maps_both_ways():
    rgb = np.zeros((100, 120, 3), np.uint8)
    rgb[40, 70] = (255, 0, 0)
    crop, box = crop_to_lens(rgb, Circle(70.0, 40.0, 10.0), size=24, margin=1.2)
    assert box == CropBox(58, 28, 24, 24) and crop.shape == (24, 24, 3)
    assert tuple(crop[12, 12]) == (255, 0, 0)  # the centre pixel stays the centre
    assert box.to_source(*box.to_crop(33.3, 71.7)) == pytest.approx((33.3, 71.7))
    big, big_box = crop_to_lens(rgb, Circle(70.0, 40.0, 10.0), size=96, margin=1.2)
    assert big.shape == (96, 96, 3) and big_box.side == 24


def test_crop_beyond_the_image_is_black_and_paste_back_lands_inside():
    rgb = np.full((50, 50, 3), 200, np.uint8)
    crop, box = crop_to_lens(rgb, Circle(5.0, 45.0, 10.0), size=48, margin=1.5)
    assert box.x0 < 0 and box.y0 + box.side > 50
    assert crop[0, 0].max() == 0 and crop[-1, -1].max() == 0 and crop[10, 40].min() == 200
    heat = paste_back(np.ones((6, 6), np.float32), box, 50, 50)
    assert heat.shape == (50, 50)
    assert heat[45, 5] == 1.0 and heat[5, 45] == 0.0
    assert heat.sum() == pytest.approx((min(box.x0 + box.side, 50) - 0) * (50 - box.y0))


def test_bad_inputs_are_refused_with_a_reason():
    with pytest.raises(LensError, match="uint8 RGB"):
        find_lens(np.zeros((32, 32), np.uint8))
    with pytest.raises(LensError, match="radius above 0"):
        lens_box(Circle(5, 5, 0))
    with pytest.raises(LensError, match="crop size"):
        crop_to_lens(np.zeros((8, 8, 3), np.uint8), Circle(4, 4, 2), size=0)
    assert find_lens(np.zeros((1, 1, 3), np.uint8)).circle is None
    assert find_lens(np.zeros((64, 64, 3), np.uint8)).confidence == 0.0


@pytest.mark.parametrize("kind", KINDS)
def test_finder_finds_the_lens_in_every_framing(kind):
    ious = []
    for i in range(6):
        s = render_sample(np.random.default_rng([SEED, i]), 160, target_grade=(i * 3 + 1) % 8, framing=kind)
        fit = find_lens(s.image)
        ious.append(fit.circle.iou(Circle(*s.circle)) if fit.circle else 0.0)
        if fit.confidence >= 0.3:  # what the gate accepts is where the lens is
            assert ious[-1] >= 0.85, (i, fit)
    assert sum(v >= 0.9 for v in ious) >= 5, ious  # the goal is 97 %; six tiny photographs allow one miss
    assert np.median(ious) >= 0.93


def test_finder_copes_with_dense_cataracts_that_shadow_most_of_the_disc():
    hits = 0
    for i in range(8):
        s = render_sample(np.random.default_rng([SEED, 7, i]), 192, target_grade=7, framing="varied")
        fit = find_lens(s.image)
        hits += fit.circle is not None and fit.circle.iou(Circle(*s.circle)) >= 0.9
        assert s.true_grade == 7
    assert hits >= 7


def test_finder_is_deterministic_and_scales_with_the_image():
    s = render_sample(np.random.default_rng([SEED, 99]), 256, target_grade=3, framing="off_centre")
    a, b = find_lens(s.image), find_lens(s.image.copy())
    assert a == b
    import cv2

    big = cv2.resize(s.image, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    def four_times(c: Circle) -> Circle:  # pixel centres: x_big = 4 x + 1.5
        return Circle(4 * c.cx + 1.5, 4 * c.cy + 1.5, 4 * c.r)

    found_big = find_lens(big).circle
    assert found_big.iou(four_times(a.circle)) > 0.95
    assert found_big.iou(four_times(Circle(*s.circle))) > 0.9
