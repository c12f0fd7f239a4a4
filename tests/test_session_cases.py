"""The grading session and the case log, without Qt: what it records, when, and how Next walks the open cases."""

import numpy as np
import pytest
from case_helpers import result, write_image
from session_fakes import Backend, Cases

from cataract_app.cases import jobs
from cataract_app.grading.loading import ModelSummary
from cataract_app.session import GradingSession
from engine.cases import CaseLog, FileCheck
from engine.request import GradeRequest
from engine.results import GradeResult, ModelInfo
from engine.schema import DEFAULT_SCHEMA

SUMMARY = ModelSummary(DEFAULT_SCHEMA, None, None, True, "cpu", ("jet",))
IMAGE = np.zeros((8, 8, 3), np.uint8)
OK = FileCheck("ok", "the image is the file that was graded")


def answer(request, grade=3):
    probs = tuple(0.3 if k == grade else 0.1 for k in range(8))
    return GradeResult(grade=grade, probabilities=probs, confidence=0.3, expected_grade=float(grade),
                       sublabels_used=None if request.sublabels is None else dict(request.sublabels),
                       model=ModelInfo("m", "m-1", request.role, "a"))


@pytest.fixture
def log(tmp_path):
    with CaseLog.open(tmp_path / "cases.sqlite3", user="dr-a") as opened:
        yield opened


@pytest.fixture
def session():
    s = GradingSession(Backend(), cases=Cases())
    s.shown = []
    s.case_changed.connect(lambda case, check: s.shown.append((case.id if case else None, check)))
    s.notes = []
    s.note.connect(lambda text, _ms: s.notes.append(text))
    s.models_ready(SUMMARY)
    return s


def test_opening_looks_the_case_up_and_every_answer_is_recorded(session, log, tmp_path):
    path = str(write_image(tmp_path / "a.png"))
    session.open(path)
    assert session._cases.named("lookup") == [(path,)] and session.recording
    session.image_read(path, IMAGE)
    student = session._backend.requests[-1]
    session.accept(student, answer(student))
    teacher = GradeRequest(sublabels={"central_involvement": 2}, schema=DEFAULT_SCHEMA)
    session.grade_with_sublabels({"central_involvement": 2})
    session.enter_sublabels({"central_involvement": 0})  # edited while the teacher works: it answered with 2
    session.accept(teacher, answer(teacher, 4))
    (p1, r1, s1, g1), (p2, r2, s2, g2) = session._cases.named("record")
    assert g1 is None and g2 is None  # these answers carry no input check
    assert (p1, r1.model.role, s1) == (path, "student", None)
    full = {n: (2 if n == "central_involvement" else None) for n in DEFAULT_SCHEMA.names}
    assert (p2, r2.model.role, s2) == (path, "teacher", full)  # the values the teacher was given


def test_the_logs_answers_reach_the_session_only_for_the_image_on_screen(session, log, tmp_path):
    a, b = (str(write_image(tmp_path / f"{n}.png", seed=i)) for i, n in enumerate("ab"))
    case_a = log.record(result(a))
    session.open(b)
    session.case_found(a, case_a)  # a late answer about the image opened before
    session.case_saved(a, case_a)
    assert session.case is None
    case_b = log.record(result(b))
    session.case_found(b, case_b)
    assert session.case.id == case_b.id
    session.case_saved(None, log.agree(case_b.id))
    assert session.case.status == "agreed" and session.shown[-1] == (case_b.id, None)


def test_reviews_and_details_go_to_the_log_for_the_current_case_only(session, log, tmp_path):
    path = str(write_image(tmp_path / "a.png"))
    assert not session.agree() and not session.correct(4) and not session.set_details(patient_id="P1")
    session.open(path)
    session.case_found(path, log.record(result(path), patient_id="P1"))
    case_id = session.case.id
    assert session.agree("  looks right ") and session.correct(5, "")
    assert session._cases.named("review") == [(case_id, None, "looks right"), (case_id, 5, None)]
    assert not session.set_details(patient_id="P1", eye="")  # nothing changed
    assert session.set_details(patient_id="P1", eye="OS", visit_date="2026-05-01")
    assert session._cases.named("set_details") == [(case_id, {"eye": "OS", "visit_date": "2026-05-01"})]
    assert not session.reopen()  # the case in the session is still open
    session.case_saved(None, log.agree(case_id))
    assert session.reopen() and session._cases.named("reopen") == [(case_id,)]


def test_a_case_whose_file_changed_is_shown_not_recorded_and_a_missing_one_has_no_picture(session, log, tmp_path):
    path = str(write_image(tmp_path / "a.png"))
    case = log.record(result(path))
    changed = FileCheck("changed", f"the image {path} has changed since it was graded")
    session.open_case(case, changed)
    assert session._backend.reads == [path] and not session.recording
    assert session._cases.named("lookup") == []
    session.image_read(path, IMAGE)
    request = session._backend.requests[-1]
    session.accept(request, answer(request))
    assert session._cases.named("record") == []  # the answers describe the earlier file
    assert session.case.id == case.id and session.case_check is changed and session.agree()

    failures = []
    session.failed.connect(lambda message, _keep: failures.append(message))
    missing = FileCheck("missing", f"the image {path} is no longer there")
    session.open_case(case, missing)
    assert session._backend.reads == [path] and session.image is None and not session.recording
    assert failures == [f"Case {case.id}: the image {path} is no longer there"]
    assert session.shown[-1] == (case.id, missing)


def test_recording_adds_only_answers_the_case_does_not_hold(log, tmp_path):
    from dataclasses import replace

    from case_helpers import TEACHER

    path = str(write_image(tmp_path / "a.png"))
    first = jobs.record_answer(log, path, result(path), None, None)
    again = jobs.record_answer(log, path, result(path), jobs.lookup(log, path)[0], None)  # a new heat-map target
    assert again.id == first.id and len(again.answers) == 1
    used = {"central_involvement": 2}
    teacher = result(path, grade=4, model=TEACHER, sublabels_used=used)
    case = jobs.record_answer(log, path, teacher, None, used)
    assert len(case.answers) == 2 and case.sublabels == used
    case = jobs.record_answer(log, path, teacher, None, {"central_involvement": 2, "morphology": None})
    assert len(case.answers) == 2 and case.sublabels == {"central_involvement": 2, "morphology": None}
    newer = replace(result(path), model=replace(result(path).model, model_id="n" * 16, name="newer"))
    assert [a.model_name for a in jobs.record_answer(log, path, newer, None, None).answers] == ["stu", "tea", "newer"]
    write_image(tmp_path / "a.png", seed=5)  # other bytes at the same place: another photograph
    assert jobs.record_answer(log, path, result(path), None, None).id != first.id


def test_next_passes_over_open_cases_it_showed_and_starts_again_when_none_is_left(session, log, tmp_path):
    cases = [log.record(result(str(write_image(tmp_path / f"{i}.png", seed=i)))) for i in range(3)]
    assert session.review_next()
    session.open_case(cases[0], OK)
    session.review_next()  # case 0 stays open: passed over
    session.open_case(cases[1], OK)
    session.case_saved(None, log.agree(cases[1].id))
    session.review_next()  # case 1 was reviewed: not counted as passed over
    assert session._cases.named("next_case") == [((),), ((cases[0].id,),), ((cases[0].id,),)]
    session.no_case_left()
    assert "the 1 passed over is still open" in session.notes[-1] and session.walk_skip == set()
    session.no_case_left()
    assert session.notes[-1] == "No open case is left: every case has been reviewed."


def test_without_a_case_log_nothing_is_asked_of_one():
    s = GradingSession(Backend())
    s.open("/eyes/a.png")
    s.image_read("/eyes/a.png", IMAGE)
    assert not s.recording and not s.review_next() and not s.agree()


def test_a_case_with_entered_sublabels_gets_them_back_and_the_teachers_answer(session, log, tmp_path):
    path = str(write_image(tmp_path / "a.png"))
    entered = {"central_involvement": 2, "morphology": 1}
    case = log.record(result(path), sublabels=entered)
    restored = []
    session.sublabels_restored.connect(restored.append)
    session.open_case(case, OK)
    session.image_read(path, IMAGE)
    assert restored == []  # not before the student answered: the form is blank for a new image until then
    student = session._backend.requests[-1]
    session.accept(student, answer(student))
    full = {n: entered.get(n) for n in DEFAULT_SCHEMA.names}
    assert restored == [full]
    teacher = session._backend.requests[-1]
    assert teacher.role == "teacher" and dict(teacher.sublabels) == full
    session.accept(teacher, answer(teacher, 5))
    session.case_saved(path, log.get(case.id))
    assert len(restored) == 1 and len(session._backend.requests) == 2


def test_sublabels_the_clinician_just_entered_are_not_restored_over(session, log, tmp_path):
    path = str(write_image(tmp_path / "a.png"))
    restored = []
    session.sublabels_restored.connect(restored.append)
    session.open(path)
    session.image_read(path, IMAGE)
    student = session._backend.requests[-1]
    session.accept(student, answer(student))
    session.case_found(path, log.record(result(path)))
    session.grade_with_sublabels({"central_involvement": 1})
    teacher = session._backend.requests[-1]
    session.accept(teacher, answer(teacher))
    session.case_saved(path, log.set_sublabels(session.case.id, {"central_involvement": 1}))
    assert restored == [] and len(session._backend.requests) == 2
