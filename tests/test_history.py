"""A patient's history: each eye's visits in date order with model id, model grade and final grade."""

from datetime import date

import pytest
from case_helpers import TEACHER, result, write_image

from engine.cases import CaseLog, CaseLogError


@pytest.fixture
def log(tmp_path):
    with CaseLog.open(tmp_path / "cases.sqlite3", user="dr-a") as log:
        yield log


def test_each_eye_in_date_order_with_model_and_final_grades(log, tmp_path):
    img = [write_image(tmp_path / f"{i}.png", seed=i) for i in range(6)]
    late = log.record(result(img[0], grade=3), patient_id="P1", eye="OD", visit_date="2026-03-01")
    early = log.record(result(img[1], grade=1), patient_id="P1", eye="OD", visit_date="2025-06-01")
    log.correct(early.id, 2, note="spokes at 7 o'clock")
    left = log.record(result(img[2], grade=4), patient_id="P1", eye="OS", visit_date="2025-06-01")
    log.record(result(img[2], grade=5, model=TEACHER), patient_id="P1")  # a teacher answer, later
    log.agree(left.id)
    undated = log.record(result(img[3], grade=0), patient_id="P1", eye="OS")
    no_eye = log.record(result(img[4], grade=6), patient_id="P1", visit_date="2024-01-01")
    log.record(result(img[5], grade=7), patient_id="P2", eye="OD", visit_date="2025-01-01")

    h = log.history("P1")
    assert h.patient_id == "P1" and len(h) == 5
    assert [(v.case_id, v.date, v.model_grade, v.final_grade, v.status) for v in h.od] == [
        (early.id, "2025-06-01", 1, 2, "corrected"), (late.id, "2026-03-01", 3, None, "open")]
    first_os, second_os = h.os
    assert (first_os.case_id, first_os.model_grade, first_os.final_grade) == (left.id, 5, 5)
    assert (first_os.model_id, first_os.model_role, first_os.model_name) == (TEACHER.model_id, "teacher", "tea")
    assert h.od[0].model_id == "s" * 16 and h.od[0].model_role == "student"
    assert second_os.case_id == undated.id and second_os.date_is_recorded and not first_os.date_is_recorded
    assert second_os.date == date.today().isoformat()  # the day it was recorded
    assert [v.case_id for v in h.no_eye] == [no_eye.id] and h.eye(None) == h.no_eye and h.eye("OD") == h.od
    assert [v.case_id for v in h.visits] == [no_eye.id, early.id, left.id, late.id, undated.id]


def test_unknown_patient_is_empty_and_a_blank_id_is_refused(log):
    assert len(log.history("nobody")) == 0 and log.history("nobody").visits == ()
    with pytest.raises(CaseLogError, match="needs a patient ID"):
        log.history("  ")
