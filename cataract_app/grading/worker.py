"""Grading off the GUI thread: one Grader in one worker thread, tickets serialised and versioned.

Every ticket carries an id, an image and the engine's GradeRequest. A newer ticket of the
same kind (student or teacher) supersedes older ones: the worker skips them if they have
not started, and their answers never reach the window. Each ticket ends with
`finished(ticket)`, whatever happened, and a load ends with `model_ready` or `model_failed`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from cataract_app.errors import AppError, user_message
from cataract_app.grading.loading import LoadOptions, build_grader
from engine.choices import ROLES
from engine.request import GradeRequest


@dataclass(frozen=True)
class GradeTicket:
    """One image queued for grading as `request` asks; newer tickets of its kind supersede it."""

    ticket_id: int
    image: np.ndarray = field(repr=False)
    request: GradeRequest
    source: str | None = None

    @property
    def kind(self) -> str:
        """STUDENT or TEACHER: who answers, and which earlier tickets this one supersedes."""
        return self.request.role


class ModelNotReady(AppError):
    """A grade was asked for while no model is loaded (it failed to load)."""


class GraderWorker(QObject):
    """Lives in the worker thread; owns the one Grader."""

    model_ready = Signal(object)  # ModelSummary
    model_failed = Signal(str)
    graded = Signal(object, object)  # GradeTicket, GradeResult
    failed = Signal(object, str)  # GradeTicket, message
    finished = Signal(object)  # GradeTicket, always

    def __init__(self, is_current: Callable[[GradeTicket], bool], factory=build_grader) -> None:
        super().__init__()
        self._is_current = is_current
        self._factory = factory
        self._grader = None
        self._load_error: str | None = None
        self.lock = threading.Lock()  # one user of the Grader at a time (this thread, a batch, a report)

    @Slot(object)
    def load(self, options: LoadOptions) -> None:
        try:
            grader, summary = self._factory(options)
            with self.lock:
                self._grader = grader
        except Exception as e:  # noqa: BLE001  (every failure must reach the user)
            self._load_error = user_message(e)
            self.model_failed.emit(self._load_error)
        else:
            self.model_ready.emit(summary)

    @Slot(object)
    def grade(self, ticket: GradeTicket) -> None:
        try:
            if not self._is_current(ticket):
                return
            if self._grader is None:
                raise ModelNotReady(self._load_error or "the model is not loaded")
            with self.lock:
                result = self._grader.grade(ticket.image, ticket.request)
            if ticket.source and getattr(result, "source", None) is None:
                result = replace(result, source=ticket.source)
            self.graded.emit(ticket, result)
        except Exception as e:  # noqa: BLE001
            self.failed.emit(ticket, user_message(e))
        finally:
            self.finished.emit(ticket)


class GradingService(QObject):
    """The GUI-thread side: submits requests and passes on only current answers."""

    model_ready = Signal(object)
    model_failed = Signal(str)
    graded = Signal(object, object)
    failed = Signal(object, str)
    finished = Signal(object)
    _load_requested = Signal(object)
    _grade_requested = Signal(object)

    def __init__(self, factory=build_grader, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._latest = dict.fromkeys(ROLES, 0)
        self._next_id = 0
        self.pending = 0  # requests submitted and not yet finished
        self._thread = QThread()
        self._thread.setObjectName("grader")
        self._worker = GraderWorker(self.is_current, factory)
        self._worker.moveToThread(self._thread)
        self._load_requested.connect(self._worker.load)
        self._grade_requested.connect(self._worker.grade)
        self._worker.model_ready.connect(self.model_ready)
        self._worker.model_failed.connect(self.model_failed)
        self._worker.graded.connect(self._on_graded)
        self._worker.failed.connect(self._on_failed)
        self._worker.finished.connect(self._on_finished)
        self._thread.finished.connect(self._worker.deleteLater)
        self._thread.start()

    def load(self, options: LoadOptions) -> None:
        self._load_requested.emit(options)

    @property
    def grader(self):
        """The loaded Grader (None before a model loaded); use it only while holding `lock`."""
        return self._worker._grader

    @property
    def lock(self) -> threading.Lock:
        """Held while the Grader works: batch grading and reports take it between files, so a click still grades."""
        return self._worker.lock

    def submit(self, image: np.ndarray, request: GradeRequest, source: str | None = None) -> GradeTicket:
        """Queue `image` for grading as `request` asks; it supersedes every earlier ticket of its kind."""
        self._next_id += 1
        ticket = GradeTicket(self._next_id, image, request, source)
        self._latest[ticket.kind] = self._next_id
        self.pending += 1
        self._grade_requested.emit(ticket)
        return ticket

    def supersede_all(self) -> None:
        """A new image: every pending or running request is now stale."""
        self._next_id += 1
        self._latest = dict.fromkeys(self._latest, self._next_id)

    def is_current(self, ticket: GradeTicket) -> bool:
        # Read from the worker thread too: a dict lookup of ints is atomic under the GIL.
        return self._latest.get(ticket.kind) == ticket.ticket_id

    def shutdown(self) -> None:
        """Stop the worker thread after the request it is running (call once, on close)."""
        if self._thread.isRunning():
            self.supersede_all()
            self._thread.quit()
            self._thread.wait()

    def _on_finished(self, ticket: GradeTicket) -> None:
        self.pending -= 1
        self.finished.emit(ticket)

    def _on_graded(self, ticket: GradeTicket, result) -> None:
        if self.is_current(ticket):
            self.graded.emit(ticket, result)

    def _on_failed(self, ticket: GradeTicket, message: str) -> None:
        if self.is_current(ticket):
            self.failed.emit(ticket, message)
