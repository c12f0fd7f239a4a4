"""Large photographs: the model sees a reduced decode, the heat map keeps the file's full size."""

import cv2
import numpy as np
import pytest

from engine.data.dataset import GradingDataset, preprocess_eval
from engine.data.manifest import Record
from engine.io import min_side_for, read_image, read_image_reduced
from engine.schema import DEFAULT_SCHEMA


@pytest.fixture(scope="module")
def large_photo(tmp_path_factory):
    from engine.synth.sample import render_sample

    rgb = render_sample(np.random.default_rng(5), 256, target_grade=4).image
    big = cv2.resize(rgb, (2600, 2200), interpolation=cv2.INTER_CUBIC)  # min side 2200: decoded at 1/2
    path = tmp_path_factory.mktemp("large") / "eye.jpg"
    assert cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


def test_grader_maps_the_reduced_decode_back_to_the_full_image(tiny_bundles, large_photo):
    from engine.infer import Grader

    grader = Grader(tiny_bundles[0], device="cpu")
    from_file = grader.grade(large_photo)  # the default request draws the heat map
    full = grader.grade(read_image(large_photo))
    assert from_file.cam.shape == full.cam.shape == (2200, 2600)
    assert np.abs(np.subtract(from_file.probabilities, full.probabilities)).max() < 0.01
    assert np.corrcoef(from_file.cam.ravel()[::97], full.cam.ravel()[::97])[0, 1] > 0.99
    assert (from_file.cam[:, :200] == 0).all()  # outside the centred square the model saw
    (path, batch, error), = grader.grade_files([large_photo], grader.request(cam=True))
    assert error is None and batch.cam.shape == (2200, 2600) and batch.grade == from_file.grade


def test_training_and_grading_decode_a_large_photo_alike(large_photo):
    record = Record(image=large_photo, rel_path="eye.jpg", grade=4, sublabels=(None,) * len(DEFAULT_SCHEMA))
    ds = GradingDataset([record], DEFAULT_SCHEMA, 64, train=False)
    reduced = read_image_reduced(large_photo, min_side_for(64))
    assert reduced.scale == 2.0
    expected = preprocess_eval(reduced.rgb, 64)
    assert ds[0]["image"].equal(expected)
    assert (ds[0]["image"] - preprocess_eval(read_image(large_photo), 64)).abs().mean() < 0.02


def test_a_lens_crop_of_a_large_photo_speaks_in_the_files_pixels(lens_bundle, large_photo):
    from engine.infer import Grader
    from engine.inputs import disc_mask
    from engine.request import GradeRequest
    from engine.roi import Circle

    grader = Grader(lens_bundle, teacher=None, device="cpu")
    found = grader.grade(large_photo)  # decoded at 1/2: the circle and the heat map are in full-size pixels
    full = grader.grade(read_image(large_photo))
    assert found.cam.shape == (2200, 2600)
    assert found.input.circle.iou(full.input.circle) > 0.95
    given = Circle(full.input.circle.cx + 40, full.input.circle.cy, full.input.circle.r)
    r = grader.grade(large_photo, GradeRequest(lens=given))
    assert r.input.circle.iou(given) > 0.99 and r.input.source == "given"
    inside = disc_mask(2200, 2600, given)
    assert r.cam[inside == 1].max() > 0 and r.cam[inside == 0].max() == 0
