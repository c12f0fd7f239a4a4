"""The grading session's lens circle and input gate, without Qt: which circle is asked, which answers are held."""

from dataclasses import replace

import numpy as np
import pytest
from session_fakes import Backend, Cases

from cataract_app.grading.loading import ModelSummary
from cataract_app.session import GradingSession
from engine.gate import Problem
from engine.inputs import FOUND, GIVEN, InputCheck
from engine.request import GradeRequest
from engine.results import GradeResult, ModelInfo
from engine.roi import Circle
from engine.schema import DEFAULT_SCHEMA

SUMMARY = ModelSummary(DEFAULT_SCHEMA, None, None, True, "cpu", ("jet",))
IMAGE = np.zeros((40, 40, 3), np.uint8)
FOUND_CIRCLE = Circle(20.0, 21.0, 12.0)
BLUR = Problem("out_of_focus", "The photograph is out of focus.", 0.3, 0.14)
DARK = Problem("under_exposed", "The photograph is too dark.", 20.0, 45.0)


def answer(request, problems=(), grade=3):
    """The grader's answer to `request`: the given circle when it carries one, else the finder's."""
    circle, source = (request.lens, GIVEN) if request.lens is not None else (FOUND_CIRCLE, FOUND)
    check = InputCheck(True, not problems, tuple(problems), circle, source, None if request.lens else 0.9)
    probs = tuple(0.3 if k == grade else 0.1 for k in range(8))
    return GradeResult(grade=grade, probabilities=probs, confidence=0.3, expected_grade=float(grade),
                       sublabels_used=None if request.sublabels is None else dict(request.sublabels),
                       cam=np.ones((40, 40), np.float32), model=ModelInfo("m", "m-1", request.role, "a"), input=check)


@pytest.fixture
def session():
    s = GradingSession(Backend(), cases=Cases())
    s.heard = {n: [] for n in ("answered", "lens_changed", "input_refused", "input_passed", "cam_changed", "state")}
    for name, calls in s.heard.items():
        getattr(s, name).connect(lambda *args, calls=calls: calls.append(args))
    s.models_ready(SUMMARY)
    s.open("/eyes/a.png")
    s.image_read("/eyes/a.png", IMAGE)
    return s


def last_request(s):
    return s._backend.requests[-1]


def test_the_found_circle_is_shown_and_a_placed_one_is_asked_for_until_reset(session):
    first = last_request(session)
    assert first.lens is None
    session.accept(first, answer(first))
    assert session.heard["lens_changed"][-1] == (FOUND_CIRCLE, FOUND) and session.found == FOUND_CIRCLE
    session.set_lens((18, 19, 10))
    moved = last_request(session)
    assert moved.lens == Circle(18.0, 19.0, 10.0) and moved.role == "student"
    assert session.heard["lens_changed"][-1] == (Circle(18.0, 19.0, 10.0), GIVEN)
    session.accept(first, answer(first, grade=5))  # a late answer asked with the old circle is dropped
    assert session.student.grade == 3
    session.accept(moved, answer(moved, grade=4))
    assert session.student.grade == 4 and session.student.input.source == GIVEN
    session.set_lens(Circle(18.0, 19.0, 10.0))  # the same circle: nothing to grade again
    assert last_request(session) is moved
    assert session.reset_lens()
    assert last_request(session).lens is None and session.heard["lens_changed"][-1] == (FOUND_CIRCLE, FOUND)
    assert not session.reset_lens()  # nothing placed any more
    session.open("/eyes/b.png")
    assert session.lens is None and session.found is None and session.heard["lens_changed"][-1] == (None, None)


def test_the_teacher_is_asked_again_with_the_placed_circle(session):
    student = last_request(session)
    session.accept(student, answer(student))
    session.grade_with_sublabels({"central_involvement": 1})
    teacher = last_request(session)
    session.accept(teacher, answer(teacher))
    session.set_lens((19, 20, 11))
    roles = [(r.role, r.lens) for r in session._backend.requests[-2:]]
    assert roles == [("student", Circle(19.0, 20.0, 11.0)), ("teacher", Circle(19.0, 20.0, 11.0))]


def test_problems_hold_the_grade_back_until_grade_anyway_and_the_log_says_so(session):
    request = last_request(session)
    session.accept(request, answer(request, [BLUR]))
    assert session.student is None and session.heard["answered"] == []
    assert session.heard["input_refused"][-1][0].codes == ["out_of_focus"] and session.refused is not None
    assert session.heard["cam_changed"][-1] == (None,)  # no heat map either
    assert session._cases.named("record") == []  # nothing is kept until the clinician decides
    assert session.grade_anyway()
    assert session.student.grade == 3 and session.heard["answered"][-1][0] == "student"
    assert session.heard["input_passed"][-1][1] is True and session.refused is None
    (path, result, subs, gate), = session._cases.named("record")
    assert gate["graded_anyway"] is True and gate["ok"] is False and gate["problems"][0]["code"] == "out_of_focus"
    assert not session.grade_anyway()  # nothing held any more


def test_acknowledged_problems_stay_acknowledged_new_ones_are_held_again(session):
    request = last_request(session)
    session.accept(request, answer(request, [BLUR]))
    session.grade_anyway()
    session.set_lens((20, 20, 9))
    moved = last_request(session)
    session.accept(moved, answer(moved, [BLUR], grade=2))  # the same problem: shown at once
    assert session.student.grade == 2 and session.graded_anyway(session.student)
    session.set_lens((20, 20, 8))
    darker = last_request(session)
    session.accept(darker, answer(darker, [BLUR, DARK]))  # a new problem: held again
    assert session.student is None and session.heard["input_refused"][-1][0].codes == ["out_of_focus", "under_exposed"]
    session.open("/eyes/b.png")
    session.image_read("/eyes/b.png", IMAGE)
    fresh = last_request(session)
    session.accept(fresh, answer(fresh, [BLUR]))  # another image: nothing is acknowledged for it
    assert session.student is None


def test_a_clean_answer_is_shown_and_recorded_with_graded_anyway_false(session):
    request = last_request(session)
    session.accept(request, answer(request))
    assert session.student is not None and session.heard["input_passed"][-1][1] is False
    (_path, _result, _subs, gate), = session._cases.named("record")
    assert gate["graded_anyway"] is False and gate["ok"] is True and gate["circle_source"] == FOUND


def test_an_unchecked_answer_is_shown_as_it_is(session):
    request = last_request(session)
    session.accept(request, replace(answer(request, [BLUR]), input=None))
    assert session.student is not None and session.refused is None


def test_a_circle_needs_an_image_and_a_real_radius(session):
    with pytest.raises(ValueError):
        session.set_lens((1, 2, 0))
    idle = GradingSession(Backend())
    idle.set_lens((5, 5, 3))
    assert idle.lens is None and idle._backend.requests == []
    assert GradeRequest(lens=(1, 2, 3)).lens == Circle(1.0, 2.0, 3.0)
