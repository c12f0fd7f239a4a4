"""The shipped demo models: they load, say what they are, and grade through the defaults."""

import numpy as np
import pytest

from engine.bundle import read_card
from engine.resources import default_model_dir
from engine.synth.sheet import render_sample


@pytest.fixture(scope="module")
def grader():
    from engine.infer import Grader

    return Grader(device="cpu")  # the defaults in resources/models/


def test_default_bundles_are_demo_models_with_test_metrics():
    for role in ("student", "teacher"):
        card = read_card(default_model_dir(role))
        assert card.role == role
        assert "not for clinical use" in card.notice
        assert {"acc", "qwk", "within1"} <= set(card.metrics["test"])


def test_defaults_grade_a_synthetic_photo_with_both_models(grader):
    sample = render_sample(np.random.default_rng(5), image_size=192, target_grade=6)
    student = grader.grade(sample.image)
    teacher = grader.grade(sample.image, grader.request(sublabels=sample.true_sublabels))
    assert student.model.name == "demo-distilled-student" and teacher.model.name == "demo-fusion-teacher"
    assert student.cam.shape == (192, 192) and teacher.cam.shape == (192, 192)
    assert abs(teacher.grade - sample.true_grade) <= 1  # the teacher reads the sub-labels well


def _single_spoke(seed: int, angle: float):
    from engine.synth.geometry import Spoke

    rng = np.random.default_rng(seed)
    return render_sample(rng, image_size=256, spokes=[Spoke(angle=angle, half_width=6, reach=0.7, density=0.9)])


def test_heat_map_of_what_raises_the_grade_lies_on_a_single_spoke(grader):
    """One spoke per photograph, at five angles and on four eyes: the severity map is brighter
    inside the spoke's drawn opacity than outside it, image by image and on average."""
    inside, outside = [], []
    for seed in range(4):
        for angle in (0, 45, 120, 200, 315):
            s = _single_spoke(seed, angle)
            cam = grader.grade(s.image, grader.request(target="severity")).cam
            mask = s.opacity_mask > 0.1
            assert mask.any() and (~mask).any()
            inside.append(float(cam[mask].mean()))
            outside.append(float(cam[~mask].mean()))
    hits = sum(i > o for i, o in zip(inside, outside))
    # The 128-px demo student sees a 4x4 feature grid, so a thin spoke is not always resolved.
    assert hits >= 16, f"the map favoured the spoke on only {hits} of 20 photographs"
    assert np.mean(inside) > 2 * np.mean(outside)
