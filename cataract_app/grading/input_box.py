"""The input gate's problems in the grade panel, with "Grade anyway": no grade is shown until it is pressed.

The box follows a GradingSession: `input_refused` lists the problems and offers the button
(which calls `session.grade_anyway`); `input_passed` hides the box, or keeps the problems
on screen under "Graded anyway" so the grade is never read without them.
"""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from cataract_app import theme
from engine.inputs import InputCheck

REFUSED = "This photograph may not be fit to grade"
ANYWAY = "Graded anyway, despite these problems"
HINT = ("Check the photograph. If the lens circle is wrong, drag it onto the lens and the image is graded again; "
        "otherwise press Grade anyway to see the model's answer.")


class InputProblemsBox(QFrame):
    """The gate's sentences and the Grade anyway button; hidden while the photograph passes."""

    grade_anyway_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("inputProblems")
        self.setStyleSheet(f"QFrame#inputProblems {{ background: {theme.ERROR_BG}; border: 1px solid {theme.ERROR_TEXT};"
                           " border-radius: 4px; } QFrame#inputProblems QLabel { background: transparent; }")
        self.title = QLabel(REFUSED)
        self.title.setStyleSheet(f"color: {theme.ERROR_TEXT}; font-weight: 600;")
        self.problems = QLabel("")
        self.problems.setWordWrap(True)
        self.hint = QLabel(HINT)
        self.hint.setWordWrap(True)
        self.hint.setObjectName("muted")
        self.button = QPushButton("&Grade anyway")
        self.button.setToolTip("Show the model's grade for this photograph although the input checks failed (Alt+G). "
                               "The case log records that it was graded anyway.")
        self.button.clicked.connect(self.grade_anyway_requested)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.button)
        box = QVBoxLayout(self)
        box.setContentsMargins(10, 8, 10, 8)
        for w in (self.title, self.problems, self.hint):
            box.addWidget(w)
        box.addLayout(row)
        self.setAccessibleName("Input problems")
        self.hide()

    def connect(self, session) -> None:
        session.input_refused.connect(self.show_refused)
        session.input_passed.connect(self.show_passed)
        session.opening.connect(lambda _path: self.hide())
        self.grade_anyway_requested.connect(session.grade_anyway)

    def show_refused(self, check: InputCheck) -> None:
        self._fill(check, REFUSED)
        self.hint.show()
        self.button.show()
        self.show()
        self.button.setFocus()

    def show_passed(self, check: InputCheck | None, graded_anyway: bool) -> None:
        if not graded_anyway or check is None:
            self.hide()
            return
        self._fill(check, ANYWAY)
        self.hint.hide()
        self.button.hide()
        self.show()

    def reasons(self) -> list[str]:
        return list(self._reasons)

    def _fill(self, check: InputCheck, title: str) -> None:
        self._reasons = check.reasons
        self.title.setText(title)
        self.problems.setText("<ul style='margin: 0; -qt-list-indent: 1;'>"
                              + "".join(f"<li>{escape(r, quote=False)}</li>" for r in self._reasons) + "</ul>")
        self.setToolTip("The input gate's checks: " + "; ".join(check.codes))

    _reasons: list[str] = []
