"""The case log's part of the window: its service, the review box, the Cases panel, the keys and the actions.

The window builds the room, puts its two widgets in place (the review box under the grade,
the panel as the Cases tab), binds its named actions and calls `connect` once the session
exists. The room turns the session's case notices into widgets and the widgets' requests
into session calls; it holds no rule of its own about what is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QTabWidget, QWidget

from cataract_app.cases.panel import CasesPanel
from cataract_app.cases.review_box import ReviewBox, install_review_keys
from cataract_app.cases.service import CaseService
from engine.cases import Case, FileCheck
from engine.schema import GRADES

GRADING_TAB, CASES_TAB = 0, 1
REFRESH_DELAY_MS = 150


class CasesRoom(QObject):
    """Everything the window shows of the case log; `session` is set by connect()."""

    def __init__(self, db_path: str | Path, parent: QObject | None = None, user: str | None = None) -> None:
        super().__init__(parent)
        self.service = CaseService(db_path, user, self)
        self.review_box = ReviewBox()
        self.panel = CasesPanel(self.service.read)
        self.session = None
        self.tabs: QTabWidget | None = None
        self._status = None
        self._shortcuts: list = []
        self._shown_id: int | None = None
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_DELAY_MS)
        self._refresh_timer.timeout.connect(self._refresh_panel)

    def slots(self) -> dict[str, Callable[[], object]]:
        """The room's named actions (cataract_app.actions)."""
        return {"agree": self.agree, "reopen": self.reopen, "review_next": self.review_next,
                "show_cases": lambda: self.show_tab(CASES_TAB), "show_grading": lambda: self.show_tab(GRADING_TAB),
                **{f"correct_{g}": partial(self.correct, g) for g in GRADES}}

    def connect(self, session, key_targets: list[QWidget], status, tabs: QTabWidget) -> None:
        self.session, self._status, self.tabs = session, status, tabs
        self.service.bind(session)
        session.case_changed.connect(self._show_case)
        session.case_failed.connect(self._show_error)
        self.service.saved.connect(self._saved)
        self.service.notice.connect(lambda text: status.message(f"Note: {text}", 15000))
        self.service.unavailable.connect(self._unavailable)
        box = self.review_box
        box.agree_requested.connect(lambda _note: self.agree())
        box.correct_requested.connect(lambda grade, _note: self.correct(grade))
        box.reopen_requested.connect(self.reopen)
        box.next_requested.connect(self.review_next)
        box.details_edited.connect(lambda details: session.set_details(**details))
        self.panel.case_activated.connect(self.open_case)
        self.panel.next_requested.connect(self.review_next)
        tabs.currentChanged.connect(lambda i: i == CASES_TAB and self.panel.refresh())
        self._shortcuts = install_review_keys(key_targets, self.agree, self.correct)

    # ---- what the user asks ---------------------------------------------------------------------
    def agree(self) -> bool:
        done = self.session.agree(self.review_box.note.text())
        if not done:
            self._nothing_to_review()
        return done

    def correct(self, grade: int) -> bool:
        done = self.session.correct(grade, self.review_box.note.text())
        if not done:
            self._nothing_to_review()
        return done

    def reopen(self) -> bool:
        return self.session.reopen()

    def review_next(self) -> bool:
        self.show_tab(GRADING_TAB)
        return self.session.review_next()

    def open_case(self, case_id: int) -> None:
        """Show a case of the log in the grading view, with its answers and its file's state."""
        self.show_tab(GRADING_TAB)
        self.service.open_case(case_id)

    def show_tab(self, index: int) -> None:
        if self.tabs is not None:
            self.tabs.setCurrentIndex(index)

    def shutdown(self) -> None:
        """Finish every write already asked for (a review is never lost), then stop the threads."""
        self.panel.shutdown()
        self.service.shutdown()

    # ---- what the session says ------------------------------------------------------------------
    def _show_case(self, case: Case | None, check: FileCheck | None) -> None:
        if case is None or case.id != self._shown_id:  # a note belongs to the case it was typed for
            self.review_box.note.setText(case.note or "" if case is not None else "")
        self._shown_id = case.id if case is not None else None
        self.review_box.show_case(case, check, recording=self.session.recording)
        if case is not None:
            self.panel.select_case(case.id)

    def _saved(self, case: Case) -> None:
        self._refresh_timer.start()
        if self.panel.current_id() == case.id:
            self.panel.reload_detail()

    def _refresh_panel(self) -> None:
        if self.panel.isVisible():
            self.panel.refresh()

    def _show_error(self, message: str) -> None:
        self.review_box.show_error(message)
        if self._status is not None:
            self._status.error(message)

    def _unavailable(self, message: str) -> None:
        self.review_box.set_unavailable(message)
        self.panel.count.setText(f"The case log cannot be used: {message}")
        if self._status is not None:
            self._status.error(f"Cases are not recorded: {message}")

    def _nothing_to_review(self) -> None:
        if self._status is not None:
            self._status.message("There is no case to review yet: open an image and let it be graded.", 6000)
