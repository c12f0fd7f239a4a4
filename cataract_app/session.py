"""The grading session: what is on screen and the rules for grading it, in plain Python (no Qt).

It holds the open image, the loaded models' summary, the student's and the teacher's
answers, the heat map's target and the sub-labels entered for this image, and decides
when to grade: a new image is graded by the student; entered sub-labels go to the fusion
teacher; a new heat-map target grades the image again with the same answers asked. The
panels observe it through `Notice`s; the window connects them and hands the session a
`GradingBackend` (the image reader and the grading worker) that reports back by calling
`image_read`, `image_failed`, `accept` and `reject`. Later it holds the current case of
the case log and the lens circle too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cataract_app.grading.loading import ModelSummary
from engine.choices import STUDENT, TEACHER
from engine.request import SEVERITY, CamTarget, GradeRequest, cam_target
from engine.results import GradeResult
from engine.schema import SchemaError

START_HINT = "Open a retro-illumination photograph (Ctrl+O) or drop one here."
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


class GradingSession:
    """One window's grading state and rules; observe its notices to show it."""

    def __init__(self, backend: GradingBackend, target: object = SEVERITY) -> None:
        self._backend = backend
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

    # ---- images ----------------------------------------------------------------------------------
    def open(self, path: str | Path) -> None:
        """Read `path` in the background; the old answers leave the screen at once, the old picture stays."""
        self._backend.supersede()
        self.path = str(path)
        self.student = self.teacher = self.cam_result = None
        self.sublabels, self.teacher_stale = {}, False
        self.opening.emit(self.path)
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
        self._backend.submit(self.image, GradeRequest(target=self.target), self.path)

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
            request = GradeRequest(sublabels=self.sublabels, schema=self.summary.schema, target=self.target)
        except SchemaError as e:
            self._fail(str(e), keep_result=True)
            return
        self.state.emit("Grading with sub-labels\u2026", True, True)
        self._backend.submit(self.image, request, self.path)

    def set_target(self, target: object) -> None:
        """The heat map should explain something else: grade again, asking the same answers."""
        self.target = cam_target(target)
        if self.image is None or self.summary is None:
            return
        self.grade()
        if self.teacher is not None and any(v is not None for v in self.sublabels.values()):
            self.grade_with_sublabels()

    def accept(self, request: GradeRequest, result: GradeResult) -> None:
        """An answer to `request` arrived (only answers for the image on screen are passed on)."""
        kind = request.role
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

    def reject(self, request: GradeRequest, message: str) -> None:
        self._fail(message, keep_result=request.role == TEACHER)

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
