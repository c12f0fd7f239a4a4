"""The review box beside the grade: the case's status, Agree and Correct to N, a note, the patient's details.

Keys (installed by `install_review_keys` on the image view and the grade panel only, so
the sub-label form's and the note's inputs keep their digits): Enter agrees, 0-7 corrects.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QToolButton,
    QWidget,
)

from cataract_app import theme
from cataract_app.cases.describe import answers_html, check_html, status_html
from engine.cases import OPEN, Case, FileCheck
from engine.schema import GRADES

EYE_CHOICES = ("", "OD", "OS")
EYE_LABELS = ("\u2013", "OD (right)", "OS (left)")
ANSWERS_SHOWN = 3


class ReviewBox(QGroupBox):
    """Shows the session's case and asks for reviews; it writes nothing itself."""

    agree_requested = Signal(str)  # note
    correct_requested = Signal(int, str)  # grade, note
    reopen_requested = Signal()
    next_requested = Signal()
    details_edited = Signal(dict)  # {"patient_id" | "eye" | "visit_date": text}

    def __init__(self, parent=None) -> None:
        super().__init__("Case", parent)
        self.case: Case | None = None
        self.status = QLabel("No case yet.")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.warning = QLabel("")
        self.warning.setObjectName("error")
        self.warning.setWordWrap(True)
        self.warning.hide()
        self.agree_button = QPushButton("Agree")
        self.agree_button.setObjectName("primary")
        self.agree_button.setToolTip("The latest answer's grade becomes the final grade (Enter, on the image or the grade)")
        self.correct_buttons = QButtonGroup(self)
        grades = QHBoxLayout()
        grades.setSpacing(2)
        for g in GRADES:
            button = QToolButton()
            button.setText(str(g))
            button.setCheckable(True)
            button.setFixedWidth(30)
            button.setToolTip(f"Correct to {g} (key {g}, on the image or the grade)")
            self.correct_buttons.addButton(button, g)
            grades.addWidget(button)
        self.correct_buttons.setExclusive(False)
        self.setStyleSheet(f"QToolButton {{ padding: 3px; }} QToolButton:checked {{ background: {theme.ACCENT_SOFT}; "
                           f"border: 1px solid {theme.ACCENT}; border-radius: 3px; font-weight: 700; }}")
        self.note = QLineEdit()
        self.note.setPlaceholderText("Note (optional), kept with the review")
        self.patient = QLineEdit()
        self.patient.setPlaceholderText("Patient ID")
        self.eye = QComboBox()
        for label in EYE_LABELS:
            self.eye.addItem(label)
        self.visit = QLineEdit()
        self.visit.setPlaceholderText("Visit YYYY-MM-DD")
        self.visit.setMaximumWidth(130)
        self.answers = QLabel("")
        self.answers.setObjectName("muted")
        self.answers.setWordWrap(True)
        self.reopen_button = QPushButton("Reopen")
        self.reopen_button.setToolTip("Take the review back: the case is open again (the history keeps it)")
        self.next_button = QPushButton("Next to review \u25b8")
        self.next_button.setToolTip("The most informative open case (Ctrl+N)")
        self._layout(grades)
        self.agree_button.clicked.connect(lambda: self.agree_requested.emit(self.note.text()))
        self.correct_buttons.idClicked.connect(lambda g: self.correct_requested.emit(g, self.note.text()))
        self.reopen_button.clicked.connect(self.reopen_requested)
        self.next_button.clicked.connect(self.next_requested)
        self.patient.editingFinished.connect(lambda: self._edited("patient_id", self.patient.text()))
        self.visit.editingFinished.connect(lambda: self._edited("visit_date", self.visit.text()))
        self.eye.activated.connect(lambda i: self._edited("eye", EYE_CHOICES[i]))
        self.set_unavailable(None)

    def _layout(self, grades: QHBoxLayout) -> None:
        review = QHBoxLayout()
        review.addWidget(self.agree_button)
        review.addSpacing(8)
        review.addWidget(QLabel("Correct to"))
        review.addLayout(grades)
        review.addStretch(1)
        details = QHBoxLayout()
        details.addWidget(self.patient, 1)
        details.addWidget(self.eye)
        details.addWidget(self.visit)
        buttons = self._buttons = QHBoxLayout()
        buttons.addWidget(self.reopen_button)
        buttons.addStretch(1)
        buttons.addWidget(self.next_button)
        grid = QGridLayout(self)
        grid.setVerticalSpacing(5)
        for row, item in enumerate((self.status, self.warning, review, self.note, details, self.answers, buttons)):
            if isinstance(item, QWidget):
                grid.addWidget(item, row, 0)
            else:
                grid.addLayout(item, row, 0)

    def add_action(self, action) -> QPushButton:
        """A button for a window action (e.g. the report) beside Reopen; it triggers the action."""
        button = QPushButton(action.text().replace("&", ""))
        button.setToolTip(action.statusTip())
        button.clicked.connect(action.trigger)
        self._buttons.insertWidget(1, button)
        return button

    # ---- showing ------------------------------------------------------------------------------------
    def set_unavailable(self, reason: str | None) -> None:
        """Say why nothing is recorded (None: the log is fine, or not asked yet)."""
        self._unavailable = reason
        self.show_case(self.case, None)

    def show_case(self, case: Case | None, check: FileCheck | None, recording: bool = True) -> None:
        self.case = case
        if case is None:
            if self._unavailable:
                text = f"Cases are not recorded: {self._unavailable}"
            else:
                text = ("Once graded, the image is kept as a case." if recording
                        else "This image is not recorded as a case.")
            self.status.setText(text)
            self.answers.setText("")
        else:
            self.status.setText(status_html(case))
            self.answers.setText(answers_html(case, ANSWERS_SHOWN))
            self._show_details(case)
        warning = check_html(check)
        self.warning.setText(warning)
        self.warning.setVisible(bool(warning))
        self._update_buttons()

    def show_error(self, message: str) -> None:
        self.warning.setText(message)
        self.warning.setVisible(bool(message))

    def _show_details(self, case: Case) -> None:
        for field, value in ((self.patient, case.patient_id), (self.visit, case.visit_date)):
            if not field.hasFocus() or not field.isModified():
                field.setText(value or "")
                field.setModified(False)
        self.eye.setCurrentIndex(EYE_CHOICES.index(case.eye) if case.eye in EYE_CHOICES else 0)

    def _update_buttons(self) -> None:
        case = self.case
        reviewable = case is not None and bool(case.answers)
        latest = case.latest_answer if case is not None else None
        self.agree_button.setEnabled(reviewable)
        self.agree_button.setText(f"Agree: {latest.grade}" if latest is not None else "Agree")
        for g in GRADES:
            button = self.correct_buttons.button(g)
            button.setEnabled(reviewable)
            button.setChecked(case is not None and case.status != OPEN and case.final_grade == g)
        self.reopen_button.setEnabled(case is not None and case.status != OPEN)
        for w in (self.note, self.patient, self.eye, self.visit):
            w.setEnabled(case is not None)
        self.next_button.setEnabled(not self._unavailable)

    def _edited(self, key: str, text: str) -> None:
        if self.case is not None:
            self.details_edited.emit({key: text.strip()})

    def clear_note(self) -> None:
        self.note.clear()


def install_review_keys(targets: list[QWidget], agree: Callable[[], object], correct: Callable[[int], object]) -> list:
    """Enter agrees and 0-7 correct while one of `targets` (or a child) has the focus; nowhere else."""
    shortcuts = []

    def bind(seq: QKeySequence, target: QWidget, slot: Callable[[], object]) -> None:
        shortcut = QShortcut(seq, target)
        shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        shortcut.activated.connect(slot)
        shortcuts.append(shortcut)

    for target in targets:
        for key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            bind(QKeySequence(key), target, agree)
        for g in GRADES:
            key = Qt.Key(Qt.Key.Key_0.value + g)
            for seq in (QKeySequence(key), QKeySequence(Qt.KeyboardModifier.KeypadModifier | key)):
                bind(seq, target, lambda g=g: correct(g))
    return shortcuts
