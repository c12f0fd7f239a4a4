"""The grading session: what is on screen and the rules for grading it, in plain Python (no Qt).

It holds the open image, the loaded models' summary, the student's and the teacher's
answers, the heat map's target and the sub-labels entered for this image, and decides
when to grade: a new image is graded by the student; entered sub-labels go to the fusion
teacher; a new heat-map target grades the image again with the same answers asked. The
panels observe it through `Notice`s; the window connects them and hands the session a
`GradingBackend` (the image reader and the grading worker) that reports back by calling
`image_read`, `image_failed`, `accept` and `reject`.

With a `CaseBackend` it also holds the current case of the case log: opening an image looks
its case up, every new answer is recorded (the teacher's with the sub-labels it was given),
and the clinician's review, the patient's details and the walk through the open cases in
review order go to the log from here.

It holds the lens circle as well: the finder's (from the latest checked answer) or the one the
clinician placed, which every later request of this image carries (GradeRequest.lens, source
"given") until Reset. An answer whose input gate found problems is held back: the panels hear
`input_refused` and see no grade until `grade_anyway`, which shows the held answers and records
them with graded_anyway in the case's gate dict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cataract_app.grading.loading import ModelSummary
from cataract_app.session_gate import LensGate
from engine.cases import OPEN, Case, FileCheck
from engine.choices import STUDENT, TEACHER
from engine.request import SEVERITY, CamTarget, GradeRequest, cam_target
from engine.results import GradeResult
from engine.roi import Circle
from engine.schema import SchemaError

START_HINT = "Open a retro-illumination photograph (Ctrl+O) or drop one here."
HELD = "No grade is shown: the input gate found problems with this photograph (listed below)."
NO_TEACHER = "Sub-labels need a fusion teacher model and none is loaded; start the app with --teacher BUNDLE to use them."


class Notice:
    """A plain-Python signal: observers `connect` a callable, `emit` calls each in turn."""

    def __init__(self) -> None:
        self._observers: list[Callable[..., Any]] = []

    def connect(self, observer: Callable[..., Any]) -> None:
        self._observers.append(observer)

    def emit(self, *args: Any) -> None:
        for observer in list(self._observers):
            observer(*args)


class GradingBackend(Protocol):
    """The side effects the session asks for; each answers later through the session's methods."""

    def read(self, path: str) -> None:
        """Read the image file; answer with image_read or image_failed."""

    def submit(self, image: np.ndarray, request: GradeRequest, source: str | None) -> None:
        """Grade the image as `request` asks; answer with accept or reject."""

    def supersede(self) -> None:
        """Drop every answer still pending (a new image is on its way)."""


class CaseBackend(Protocol):
    """The case log's side effects; each answers later through the session's case_* methods."""

    def lookup(self, path: str) -> None:
        """Hash the file and find its case; answer with case_found."""

    def record(self, path: str, result: GradeResult, sublabels: Mapping[str, int | None] | None,
               gate: Mapping[str, Any] | None = None) -> None:
        """Keep a new answer (the sub-labels it was given, the input gate's dict) on the file's case; answer with case_saved."""

    def review(self, case_id: int, grade: int | None, note: str | None) -> None:
        """Agree (grade None) or correct; answer with case_saved."""

    def reopen(self, case_id: int) -> None:
        """Take the review back; answer with case_saved."""

    def set_details(self, case_id: int, details: Mapping[str, str | None]) -> None:
        """Patient ID, eye, visit date; answer with case_saved."""

    def next_case(self, skip: tuple[int, ...]) -> None:
        """The next open case in review order; answer with case_opened, or no_case_left."""


class GradingSession(LensGate):
    """One window's grading state and rules; observe its notices to show it."""

    def __init__(self, backend: GradingBackend, target: object = SEVERITY, cases: CaseBackend | None = None) -> None:
        self._backend = backend
        self._cases = cases
        self.case: Case | None = None  # the case of the image on screen, once the log answered
        self.case_check: FileCheck | None = None  # set when a case was opened from the log: is its file intact?
        self.recording = False  # answers for the image on screen go to the case log
        self.walk_skip: set[int] = set()  # open cases passed over by Next in this walk
        self._restored = False  # the case's entered sub-labels were put back for this image
        self.path: str | None = None
        self.image: np.ndarray | None = None
        self.summary: ModelSummary | None = None
        self.model_error: str | None = None
        self.student: GradeResult | None = None
        self.teacher: GradeResult | None = None
        self.cam_result: GradeResult | None = None  # the answer whose heat map is drawn
        self.target: CamTarget = cam_target(target)
        self.sublabels: dict[str, int | None] = {}  # entered for this image: the form's confirmed values
        self.teacher_stale = False  # the entered sub-labels differ from those the teacher answered with
        self.opening = Notice()  # (path): a new image was asked for; the old answers are gone
        self.image_changed = Notice()  # (path, image or None): the picture to show (None: it could not be read)
        self.state = Notice()  # (text, busy, keep_result): what the grade panel says before (or over) an answer
        self.failed = Notice()  # (message, keep_result): an error the user must see
        self.note = Notice()  # (text, timeout_ms): a passing status message
        self.answered = Notice()  # (kind, GradeResult): an answer to show
        self.cam_changed = Notice()  # (GradeResult or None): the heat map to draw
        self.stale_changed = Notice()  # (bool): the teacher's answer does or does not match the entered values
        self.models_changed = Notice()  # (ModelSummary or None): models loaded (None: loading or failed)
        self.case_changed = Notice()  # (Case or None, FileCheck or None): the case of the image on screen
        self.case_failed = Notice()  # (message): the case log refused or could not do something
        self.sublabels_restored = Notice()  # (values): the case's entered sub-labels, back in the form
        self.lens: Circle | None = None  # the clinician's circle for this image; None: the finder's
        self.found: Circle | None = None  # the finder's circle in the latest checked answer
        self.held: dict[str, tuple[GradeRequest, GradeResult]] = {}  # role -> an answer kept off screen
        self.acknowledged: frozenset[str] = frozenset()  # problem codes the clinician chose to grade anyway
        self.lens_changed = Notice()  # (Circle or None, source FOUND / GIVEN / None): the circle to draw
        self.input_refused = Notice()  # (InputCheck): the gate's problems; no grade until grade_anyway
        self.input_passed = Notice()  # (InputCheck or None, graded_anyway): an answer is shown

    # ---- images ----------------------------------------------------------------------------------
    def open(self, path: str | Path, record: bool = True) -> None:
        """Read `path` in the background; the old answers leave the screen at once, the old picture stays."""
        self._backend.supersede()
        self.path = str(path)
        self.student = self.teacher = self.cam_result = None
        self.sublabels, self.teacher_stale = {}, False
        self.case, self.case_check, self._restored = None, None, False
        self.recording = record and self._cases is not None
        self._forget_lens()
        self.opening.emit(self.path)
        self.case_changed.emit(None, None)
        if self.recording:
            self._cases.lookup(self.path)
        self.cam_changed.emit(None)
        self.state.emit(f"Opening {Path(path).name}\u2026", True, False)
        self.note.emit(f"Opening {Path(path).name}\u2026", 0)
        self._backend.read(self.path)

    def image_read(self, path: str, image: np.ndarray) -> None:
        self.image = image
        self.image_changed.emit(path, image)
        self.grade()

    def image_failed(self, path: str, message: str) -> None:
        self.image = None
        self.image_changed.emit(path, None)
        self._fail(message)

    # ---- models ----------------------------------------------------------------------------------
    def models_ready(self, summary: ModelSummary) -> None:
        """The models are loaded (again): the image on screen is graded with them."""
        self.summary, self.model_error = summary, None
        self.note.emit(f"Model ready in {summary.load_ms / 1000:.1f} s.", 4000)
        self.models_changed.emit(summary)
        if self.image is not None:
            self.grade()
        elif self.path is None:
            self.state.emit(START_HINT, False, False)

    def models_failed(self, message: str) -> None:
        self.model_error = f"The model could not be loaded: {message}"
        self.models_changed.emit(None)
        self._fail(self.model_error)

    # ---- grading ---------------------------------------------------------------------------------
    def grade(self) -> None:
        """Grade the image on screen with the student."""
        if self.image is None:
            return
        if self.model_error:
            self._fail(self.model_error)
            return
        waiting = "Loading model\u2026 the image is graded as soon as it is ready." if self.summary is None else "Grading\u2026"
        self.state.emit(waiting, True, False)
        self._backend.submit(self.image, GradeRequest(target=self.target, lens=self.lens), self.path)

    def enter_sublabels(self, values: Mapping[str, int | None]) -> None:
        """The form's confirmed values changed; the teacher's answer may no longer match them."""
        self.sublabels = dict(values)
        self._update_stale()

    def grade_with_sublabels(self, values: Mapping[str, int | None] | None = None) -> None:
        """Ask the fusion teacher, with the entered sub-labels (or `values`, which become the entered ones)."""
        if self.image is None or self.summary is None:
            return
        if values is not None:
            self.enter_sublabels(values)
        try:
            request = GradeRequest(sublabels=self.sublabels, schema=self.summary.schema, target=self.target,
                                   lens=self.lens)
        except SchemaError as e:
            self._fail(str(e), keep_result=True)
            return
        self.state.emit("Grading with sub-labels\u2026", True, True)
        self._backend.submit(self.image, request, self.path)

    def set_target(self, target: object) -> None:
        """The heat map should explain something else: grade again, asking the same answers."""
        self.target = cam_target(target)
        self._regrade()

    def _regrade(self) -> None:
        """Grade the image on screen again, asking the same answers (the teacher's when sub-labels were entered)."""
        if self.image is None or self.summary is None:
            return
        teacher_asked = (self.teacher is not None or TEACHER in self.held) and any(
            v is not None for v in self.sublabels.values())
        self.grade()
        if teacher_asked:
            self.grade_with_sublabels()

    def accept(self, request: GradeRequest, result: GradeResult) -> None:
        """An answer to `request` arrived (only answers for the image on screen are passed on)."""
        kind = request.role
        if request.lens != self.lens:
            return  # asked with a circle since moved or reset: its answer is on its way
        self._show_lens(result)
        if self._must_hold(result):
            self.held[kind] = (request, result)
            if kind == STUDENT:
                self.student = None
                self.cam_result = None
                self.cam_changed.emit(None)
            self.state.emit(HELD, False, kind == TEACHER)
            self.input_refused.emit(result.input)
            self.note.emit("The input gate found problems; press Grade anyway to see the grade.", 8000)
            return
        self.held.pop(kind, None)
        anyway = self.graded_anyway(result)
        if kind == STUDENT or anyway:
            self.input_passed.emit(result.input, anyway)
        if kind == STUDENT:
            self.student = result
        else:
            self.teacher = result
            self._update_stale()
        if result.cam is not None:
            self.cam_result = result
            self.cam_changed.emit(result)
        seconds = result.timings_ms.get("total_ms", 0.0) / 1000
        text = f"Graded {Path(self.path or '').name} in {seconds:.2f} s by the {kind}."
        if result.cam is not None and not result.cam.any():
            # Grad-CAM keeps only regions that raise the grade; none did, so there is nothing to draw.
            text += " No image region raised this grade, so the heat map is empty."
        self.note.emit(text, 6000)
        self.answered.emit(kind, result)  # last: everything about it is on screen when observers hear of it
        if self.recording:
            gate = None if result.input is None else result.input.to_dict(graded_anyway=anyway)
            self._cases.record(self.path, result, result.sublabels_used if kind == TEACHER else None, gate)
        if kind == STUDENT:
            self._restore_sublabels()

    def reject(self, request: GradeRequest, message: str) -> None:
        self._fail(message, keep_result=request.role == TEACHER)

    # ---- the case log ----------------------------------------------------------------------------
    def case_found(self, path: str, case: Case | None) -> None:
        """The log's case of the file opened at `path` (None: not recorded yet)."""
        if path == self.path and self.case is None and case is not None:
            self._show_case(case)

    def case_saved(self, path: str | None, case: Case) -> None:
        """A write to the log is done: the case of `path` was recorded, or a case was reviewed or edited."""
        if (self.case is not None and case.id == self.case.id) or (self.case is None and path == self.path):
            self._show_case(case)

    def open_case(self, case: Case, check: FileCheck) -> None:
        """Show a case from the log: its file when it is intact (recorded as usual), when it changed (shown,
        not recorded: the answers describe the earlier file), or no picture when it is gone."""
        if check.state in ("ok", "changed"):
            self.open(case.image_path, record=check.ok)
        else:
            self._backend.supersede()
            self.path, self.image = case.image_path, None
            self.student = self.teacher = self.cam_result = None
            self.sublabels, self.teacher_stale, self.recording = {}, False, False
            self._forget_lens()
            self.opening.emit(self.path)
            self.image_changed.emit(self.path, None)
            self.cam_changed.emit(None)
            self._fail(f"Case {case.id}: {check.message}")
        self.case_check = check
        self._show_case(case)

    def agree(self, note: str | None = None) -> bool:
        """The clinician agrees with the case's latest answer; False when there is no case to review."""
        return self._review(None, note)

    def correct(self, grade: int, note: str | None = None) -> bool:
        """The clinician's own grade for the case."""
        return self._review(int(grade), note)

    def reopen(self) -> bool:
        if self.case is None or self._cases is None or self.case.status == OPEN:
            return False
        self._cases.reopen(self.case.id)
        return True

    def set_details(self, **details: str | None) -> bool:
        """Patient ID, eye (OD/OS) and visit date of the current case ('' or None clears one)."""
        if self.case is None or self._cases is None:
            return False
        current = {"patient_id": self.case.patient_id, "eye": self.case.eye, "visit_date": self.case.visit_date}
        changed = {k: (v or None) for k, v in details.items() if (v or None) != current.get(k)}
        if changed:
            self._cases.set_details(self.case.id, changed)
        return bool(changed)

    def review_next(self) -> bool:
        """Open the next open case in review order, passing over the ones this walk already showed."""
        if self._cases is None:
            return False
        if self.case is not None and self.case.status == OPEN:
            self.walk_skip.add(self.case.id)
        self._cases.next_case(tuple(sorted(self.walk_skip)))
        return True

    def no_case_left(self) -> None:
        if self.walk_skip:
            n = len(self.walk_skip)
            self.note.emit(f"No other open case: the {n} passed over {'is' if n == 1 else 'are'} still open; "
                           "Next starts again from the most informative one.", 10000)
            self.walk_skip.clear()
        else:
            self.note.emit("No open case is left: every case has been reviewed.", 10000)

    def case_error(self, message: str) -> None:
        self.case_failed.emit(message)

    def _review(self, grade: int | None, note: str | None) -> bool:
        if self.case is None or self._cases is None or not self.case.answers:
            return False
        self._cases.review(self.case.id, grade, (note or "").strip() or None)
        return True

    def _show_case(self, case: Case) -> None:
        self.case = case
        self.case_changed.emit(case, self.case_check)
        self._restore_sublabels()

    def _restore_sublabels(self) -> None:
        """A case with entered sub-labels gets them back in the form, and the teacher's answer beside the student's.

        Once per image, after the student answered (the form is blank for a new image until then).
        """
        case = self.case
        if (self._restored or case is None or not case.sublabels or self.student is None or self.image is None
                or self.summary is None or not self.summary.has_teacher):
            return
        values = {n: case.sublabels.get(n) for n in self.summary.schema.names}
        if all(v is None for v in values.values()):
            return
        self._restored = True
        if self.teacher is not None or any(v is not None for v in self.sublabels.values()):
            return  # the clinician entered sub-labels for this image already: theirs stand
        self.sublabels_restored.emit(values)
        self.grade_with_sublabels(values)

    # ---- helpers ---------------------------------------------------------------------------------
    def _update_stale(self) -> None:
        stale = self.teacher is not None and self._entered() != self.teacher.sublabels_used
        if stale != self.teacher_stale:
            self.teacher_stale = stale
            self.stale_changed.emit(stale)

    def _entered(self) -> dict[str, int | None]:
        """The entered sub-labels as a full mapping (name -> value or None) of the models' schema."""
        if self.summary is None:
            return dict(self.sublabels)
        return {name: self.sublabels.get(name) for name in self.summary.schema.names}

    def _fail(self, message: str, keep_result: bool = False) -> None:
        self.failed.emit(message, keep_result)
