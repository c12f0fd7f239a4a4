"""The student's and the teacher's answers side by side, a large disagreement called out."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QVBoxLayout

from cataract_app import theme
from engine.results import GradeResult

DISAGREEMENT = 2  # grades apart before the two answers are flagged


def disagreement(student: GradeResult | None, teacher: GradeResult | None) -> int | None:
    """How many grades apart the two answers are, or None until both exist."""
    if student is None or teacher is None:
        return None
    return abs(student.grade - teacher.grade)


class AnswerColumn(QFrame):
    """One model's answer in brief: grade, confidence, model name, and a note."""

    def __init__(self, title: str, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("answer")
        self.title = QLabel(title)
        self.title.setObjectName("muted")
        self.grade = QLabel("\u2013")
        self.grade.setObjectName("answerGrade")
        self.grade.setMinimumWidth(34)
        self.confidence = QLabel("")
        self.model = QLabel("")
        self.model.setObjectName("muted")
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setObjectName("muted")
        details = QVBoxLayout()
        details.setSpacing(0)
        details.addWidget(self.confidence)
        details.addWidget(self.model)
        row = QHBoxLayout()
        row.addWidget(self.grade)
        row.addLayout(details, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addLayout(row)
        layout.addWidget(self.note)
        self.set_answer(None, "")

    def set_answer(self, result: GradeResult | None, note: str, highlight: bool = False) -> None:
        """Show `result` (or a dash), with `note` under it; `highlight` colours the grade as a warning."""
        self.note.setText(note)
        self.note.setVisible(bool(note))
        if result is None:
            self.grade.setText("\u2013")
            self.grade.setStyleSheet(f"color: {theme.SUGGESTED};")
            self.confidence.setText("")
            self.model.setText("")
            return
        self.grade.setText(str(result.grade))
        self.grade.setStyleSheet(f"color: {theme.ERROR_TEXT if highlight else theme.TEXT};")
        self.confidence.setText(f"{result.confidence * 100:.0f} % confidence")
        self.model.setText(result.model.name if result.model else "unknown model")


class ComparePanel(QGroupBox):
    """Image-only answer beside the answer with sub-labels."""

    def __init__(self, parent=None) -> None:
        super().__init__("Image only vs. with sub-labels", parent)
        self.student_col = AnswerColumn("Image only (student)")
        self.teacher_col = AnswerColumn("With sub-labels (teacher)")
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.hide()
        grid = QGridLayout(self)
        grid.addWidget(self.student_col, 0, 0)
        grid.addWidget(self.teacher_col, 0, 1)
        grid.addWidget(self.note, 1, 0, 1, 2)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        self._student: GradeResult | None = None
        self._teacher: GradeResult | None = None
        self._teacher_stale = False
        self._teacher_hint = "Fill in sub-labels below and press \u201cGrade with sub-labels\u201d."
        self._refresh()

    def set_teacher_hint(self, hint: str) -> None:
        """What the teacher column says while it holds no answer (e.g. no teacher loaded)."""
        self._teacher_hint = hint
        self._refresh()

    def clear(self) -> None:
        self._student = self._teacher = None
        self._teacher_stale = False
        self._refresh()

    def set_student(self, result: GradeResult | None) -> None:
        self._student = result
        self._refresh()

    def set_teacher(self, result: GradeResult | None) -> None:
        self._teacher = result
        self._refresh()

    def set_teacher_stale(self, stale: bool) -> None:
        """Whether the entered sub-labels changed since the teacher answered (the session decides)."""
        self._teacher_stale = stale
        self._refresh()

    def gap(self) -> int | None:
        return disagreement(self._student, self._teacher)

    def is_flagged(self) -> bool:
        gap = self.gap()
        return gap is not None and gap >= DISAGREEMENT

    def _refresh(self) -> None:
        flagged = self.is_flagged()
        self.student_col.set_answer(self._student, "" if self._student else "Not graded yet.")
        stale = "Sub-labels changed since; grade again." if self._teacher_stale else ""
        self.teacher_col.set_answer(self._teacher, stale if self._teacher else self._teacher_hint, flagged)
        self._style_columns(flagged)
        if flagged:
            self.note.setObjectName("error")
            self.note.setText(
                f"\u26a0 The two models disagree by {self.gap()} grades. Review the image and the sub-labels."
            )
        elif self.gap() is not None:
            self.note.setObjectName("muted")
            self.note.setText("The two answers agree within one grade." if self.gap() else "Both models give the same grade.")
        self.note.style().unpolish(self.note)
        self.note.style().polish(self.note)
        self.note.setVisible(self.gap() is not None)

    def _style_columns(self, flagged: bool) -> None:
        border = theme.ERROR_TEXT if flagged else theme.BORDER
        background = theme.ERROR_BG if flagged else theme.PANEL
        for col in (self.student_col, self.teacher_col):
            col.setStyleSheet(
                f"QFrame#answer {{ border: 1px solid {border}; border-radius: 6px; background: {background}; }}"
                "QFrame#answer QLabel { background: transparent; }"
            )
