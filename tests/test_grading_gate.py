"""The input gate before every grade: checks, the lens crop, OOD from the same pass, heat map inside the lens."""

import json

import cv2
import numpy as np
import pytest
import torch
from gate_helpers import GATE_KEYS, noise, photo

from engine.data.transforms import preprocess_eval
from engine.gate import NO_LENS, OUT_OF_DISTRIBUTION
from engine.infer import Grader
from engine.inputs import FOUND, GIVEN, disc_mask
from engine.ood import pooled_features
from engine.preprocess import LENS
from engine.request import GradeRequest, GraderError
from engine.roi import Circle


@pytest.fixture(scope="module")
def grader(lens_bundle):
    return Grader(lens_bundle, teacher=None, device="cpu")


def test_a_good_photograph_is_cropped_to_its_found_lens_and_passes(grader):
    rgb, truth = photo()
    r = grader.grade(rgb)
    check = r.input
    assert r.input_ok is True and r.input_problems == [] and check.checked
    assert check.source == FOUND and check.circle.iou(truth) > 0.9 and check.confidence >= 0.2
    assert check.crop == LENS and check.crop_box == grader._student.preprocess_cfg.crop_box(*rgb.shape[:2], check.circle)
    # The model saw the lens square: the same probabilities as a forward pass on it.
    x = grader._models["student"].transform(rgb, check.circle)[None]
    with torch.inference_mode():
        logits = grader._student(x)["logits"]
    expected = torch.softmax(logits / grader.student_card.calibration_temperature, 1)[0].numpy()
    np.testing.assert_allclose(r.probabilities, expected, atol=1e-5)
    # The OOD score is that of the same pass's pooled features.
    scorer = grader._student.ood_scorer
    assert check.ood_threshold == pytest.approx(scorer.threshold)
    assert check.ood_score == pytest.approx(scorer.score(pooled_features(grader._student, x)[0]), rel=1e-4)
    assert r.timings_ms["gate_ms"] > 0


def test_the_heat_map_lies_on_the_photograph_and_only_inside_the_lens(grader):
    rgb, _ = photo(seed=6)
    r = grader.grade(rgb, GradeRequest(target="severity"))
    assert r.cam.shape == rgb.shape[:2]
    inside = disc_mask(*rgb.shape[:2], r.input.circle)
    assert r.cam[inside == 1].max() > 0 and r.cam[inside == 0].max() == 0
    free = grader.grade(rgb, GradeRequest(target="severity", lens=r.input.circle, check_input=False))
    assert np.array_equal(r.cam, free.cam)  # the checks change nothing but the report


def test_a_picture_with_problems_is_still_graded_and_marked(grader):
    r = grader.grade(noise())
    assert r.input_ok is False and 0 <= r.grade <= 7 and abs(sum(r.probabilities) - 1) < 1e-5
    codes = r.input.codes
    assert NO_LENS in codes and OUT_OF_DISTRIBUTION in codes
    assert r.input.ood_score > r.input.ood_threshold
    assert all(s.endswith(".") for s in r.input_problems)
    assert r.input.circle is None and r.input.source is None  # no lens: the model saw the centred square
    assert r.input.crop_box == (15, 0, 120)


def test_a_given_circle_replaces_the_finder(grader):
    rgb, truth = photo()
    r = grader.grade(rgb, GradeRequest(lens=(truth.cx, truth.cy, truth.r)))
    assert r.input.source == GIVEN and r.input.circle == truth and r.input.confidence is None
    assert r.input_ok is True
    moved = grader.grade(rgb, GradeRequest(lens=Circle(truth.cx + 15, truth.cy, truth.r)))
    assert moved.input.crop_box != r.input.crop_box and moved.probabilities != r.probabilities


def test_skipping_the_checks_still_finds_the_lens_for_the_crop(grader):
    rgb, truth = photo()
    r = grader.grade(rgb, GradeRequest(check_input=False))
    assert r.input_ok is None and not r.input.checked and r.input_problems == []
    assert r.input.source == FOUND and r.input.circle.iou(truth) > 0.9 and r.input.ood_score is None
    assert r.gate_columns()["input_ok"] == ""


def test_the_gate_dict_is_stable_plain_json(grader):
    for image in (photo()[0], noise()):
        d = grader.grade(image).input.to_dict()
        assert set(d) == GATE_KEYS and d["version"] == 1 and d["graded_anyway"] is False
        assert json.loads(json.dumps(d, allow_nan=False)) == d
        assert d["ok"] == (not d["problems"]) and all(p["reason"].endswith(".") for p in d["problems"])
    assert grader.grade(noise()).input.to_dict(graded_anyway=True)["graded_anyway"] is True


def test_a_centre_crop_bundle_keeps_its_input_and_masks_its_map(tiny_bundles):
    g = Grader(tiny_bundles[0], teacher=None, device="cpu")
    rgb, _ = photo()
    r = g.grade(rgb)
    assert r.input.crop == "centre" and r.input.ood_threshold is None and r.input.ood_score is None
    assert r.input.crop_box == (0, 0, 160)
    with torch.inference_mode():
        logits = g._student(preprocess_eval(rgb, 64)[None])["logits"]
    expected = torch.softmax(logits / g.student_card.calibration_temperature, 1)[0].numpy()
    np.testing.assert_allclose(r.probabilities, expected, atol=1e-5)
    free = g.grade(rgb, GradeRequest(check_input=False))
    assert free.input.circle is None  # nothing looked for the lens
    outside = disc_mask(*rgb.shape[:2], r.input.circle) == 0
    assert free.cam[outside].max() > 0 and r.cam[outside].max() == 0 and r.cam.max() > 0
    np.testing.assert_allclose(r.cam, free.cam * disc_mask(*rgb.shape[:2], r.input.circle))


def test_bad_lens_requests_are_refused():
    assert GradeRequest(lens=[10, 20, 5]).lens == Circle(10.0, 20.0, 5.0)
    for bad in ((1, 2), (1, 2, 0), (1, float("nan"), 3), "1,2,3", (1, 2, True)):
        with pytest.raises(GraderError, match="lens circle"):
            GradeRequest(lens=bad)
    with pytest.raises(GraderError, match="check_input must be True or False"):
        GradeRequest(check_input="no")
    assert GradeRequest().with_lens((1, 2, 3)).lens == Circle(1, 2, 3)


def test_a_batch_grades_every_readable_file_and_marks_the_bad_inputs(grader, tmp_path):
    good, _ = photo()
    paths = []
    for name, img in (("a.png", good), ("b.png", noise()), ("d.png", good)):
        cv2.imwrite(str(tmp_path / name), img[..., ::-1])
        paths.append(tmp_path / name)
    (tmp_path / "c.png").write_text("not an image")
    paths.insert(2, tmp_path / "c.png")
    out = list(grader.grade_files(paths, batch_size=2))
    assert [p for p, _r, _e in out] == [str(p) for p in paths]
    flags = [None if r is None else r.input_ok for _p, r, _e in out]
    assert flags == [True, False, None, True] and out[2][2]
