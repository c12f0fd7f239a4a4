"""The shipped demo models: they load, say what they are, and grade through the defaults."""

import numpy as np
import pytest

from engine.bundle import read_card
from engine.data.synth import render_sample
from engine.resources import default_model_dir


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
    teacher = grader.grade(sample.image, sublabels=sample.true_sublabels)
    assert student.model.name == "demo-distilled-student" and teacher.model.name == "demo-fusion-teacher"
    assert student.cam.shape == (192, 192) and teacher.cam.shape == (192, 192)
    assert abs(teacher.grade - sample.true_grade) <= 1  # the teacher reads the sub-labels well
