"""The grading session on its own, without Qt: what it grades, when, and what it tells the panels."""

from dataclasses import replace

import numpy as np
import pytest

from cataract_app.grading.loading import ModelSummary
from cataract_app.session import GradingSession
from engine.request import PREDICTED, SEVERITY, Grade
from engine.results import GradeResult, ModelInfo
from engine.schema import DEFAULT_SCHEMA

SUMMARY = ModelSummary(DEFAULT_SCHEMA, None, None, True, "cpu", ("jet",))
IMAGE = np.zeros((8, 8, 3), np.uint8)


class Backend:
    """Records what the session asks for."""

    def __init__(self) -> None:
        self.reads, self.requests, self.superseded = [], [], 0

    def read(self, path):
        self.reads.append(path)

    def submit(self, image, request, source):
        self.requests.append(request)

    def supersede(self):
        self.superseded += 1


def answer(request, grade: int = 3, cam: bool = True) -> GradeResult:
    probs = tuple(0.3 if k == grade else 0.1 for k in range(8))
    return GradeResult(grade=grade, probabilities=probs, confidence=0.3, expected_grade=float(grade),
                       sublabels_used=None if request.sublabels is None else dict(request.sublabels),
                       cam=np.ones((8, 8), np.float32) if cam else None, cam_target=request.target.key,
                       model=ModelInfo("m", "m-1", request.role, "a"))


@pytest.fixture
def session():
    s = GradingSession(Backend())
    s.heard = {name: [] for name in ("opening", "image_changed", "state", "failed", "note", "answered", "cam_changed",
                                     "stale_changed")}
    for name, calls in s.heard.items():
        getattr(s, name).connect(lambda *args, calls=calls: calls.append(args))
    s.models_ready(SUMMARY)
    return s


def opened(session, path="/eyes/a.png"):
    session.open(path)
    session.image_read(path, IMAGE)
    return session._backend


def test_a_new_image_drops_old_answers_and_is_graded_by_the_student(session):
    backend = opened(session)
    assert backend.superseded == 1 and backend.reads == ["/eyes/a.png"]
    assert session.heard["opening"] == [("/eyes/a.png",)] and session.heard["cam_changed"] == [(None,)]
    (request,) = backend.requests
    assert request.role == "student" and request.target is SEVERITY  # the default heat map: what raises the grade
    session.accept(request, answer(request))
    assert session.student.grade == 3 and session.cam_result is session.student
    assert session.heard["answered"][-1] == ("student", session.student)
    session.open("/eyes/b.png")
    assert session.student is None and session.cam_result is None and session.sublabels == {}


def test_a_new_target_regrades_both_with_the_entered_sublabels(session):
    backend = opened(session)
    session.accept(backend.requests[0], answer(backend.requests[0]))
    session.grade_with_sublabels({"central_involvement": 1})
    session.accept(backend.requests[-1], answer(backend.requests[-1], grade=4))
    assert session.teacher.sublabels_used["central_involvement"] == 1 and not session.teacher_stale
    session.enter_sublabels({"central_involvement": 2})  # the form changed after the teacher answered
    assert session.teacher_stale and session.heard["stale_changed"] == [(True,)]
    session.set_target("predicted")
    student, teacher = backend.requests[-2:]
    assert (student.role, student.target) == ("student", PREDICTED)
    assert (teacher.role, teacher.target, teacher.sublabels["central_involvement"]) == ("teacher", PREDICTED, 2)
    session.accept(teacher, answer(teacher))
    assert not session.teacher_stale and session.heard["stale_changed"] == [(True,), (False,)]


def test_the_teacher_is_asked_again_only_when_something_is_entered(session):
    backend = opened(session)
    session.grade_with_sublabels({"sectors_involved": 4})
    session.accept(backend.requests[-1], answer(backend.requests[-1]))
    session.enter_sublabels(dict.fromkeys(DEFAULT_SCHEMA.names))  # the form was cleared
    session.set_target(Grade(5))
    assert [r.role for r in backend.requests] == ["student", "teacher", "student"] and session.teacher_stale


def test_an_empty_heat_map_and_failures_are_said(session):
    backend = opened(session)
    empty = replace(answer(backend.requests[0]), cam=np.zeros((8, 8), np.float32))
    session.accept(backend.requests[0], empty)
    assert "heat map is empty" in session.heard["note"][-1][0]
    session.grade_with_sublabels({"central_involvement": 9})
    assert "outside 0-2" in session.heard["failed"][-1][0] and session.heard["failed"][-1][1] is True
    session.reject(backend.requests[0], "Cannot read image")
    assert session.heard["failed"][-1] == ("Cannot read image", False)


def test_nothing_is_graded_without_an_image_or_with_a_model_that_failed():
    backend = Backend()
    s = GradingSession(backend)
    s.set_target("predicted")
    s.grade_with_sublabels({"central_involvement": 1})
    assert backend.requests == []
    failed = []
    s.failed.connect(lambda message, keep: failed.append(message))
    s.models_failed("bundle /x: no card.json")
    s.open("/eyes/a.png")
    s.image_read("/eyes/a.png", IMAGE)
    assert backend.requests == [] and failed[-1] == "The model could not be loaded: bundle /x: no card.json"
