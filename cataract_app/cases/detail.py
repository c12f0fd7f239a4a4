"""The Cases panel's right side: the selected case, its picture, every answer and whether its file is intact."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from cataract_app.cases.describe import answers_html, check_html, details_line, status_html
from cataract_app.cases.history_plot import HistoryPlot
from cataract_app.cases.thumbnails import Thumbnails
from engine.cases import Case, FileCheck

PREVIEW_PX = 240


class CaseDetail(QScrollArea):
    """Shows one case read from the log; `open_requested(id)` asks for it in the grading view."""

    open_requested = Signal(int)
    patient_requested = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.case: Case | None = None
        self.check: FileCheck | None = None
        self.previews = Thumbnails(PREVIEW_PX, capacity=40, parent=self)
        self.previews.ready.connect(self._preview_ready)
        self.picture = QLabel()
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setFixedHeight(PREVIEW_PX + 8)
        self.picture.setStyleSheet("background: #2b2f33; color: #aab4be; border-radius: 4px;")
        self.status = QLabel("Select a case to see it here.")
        self.status.setWordWrap(True)
        self.details = QLabel("")
        self.details.setObjectName("muted")
        self.path = QLabel("")
        self.path.setObjectName("muted")
        self.path.setWordWrap(True)
        self.path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warning = QLabel("")
        self.warning.setObjectName("error")
        self.warning.setWordWrap(True)
        self.warning.hide()
        self.answers_title = QLabel("<b>Answers</b>")
        self.answers = QLabel("")
        self.answers.setWordWrap(True)
        self.review = QLabel("")
        self.review.setWordWrap(True)
        self.history_title = QLabel("<b>Grades over time</b>")
        self.history = HistoryPlot()
        self.open_button = QPushButton("Open case")
        self.open_button.setObjectName("primary")
        self.patient_button = QPushButton("Patient's cases")
        self.patient_button.setToolTip("Only this patient's cases in the table")
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.patient_button)
        buttons.addStretch(1)
        inner = QWidget()
        layout = QVBoxLayout(inner)
        for w in (self.picture, self.status, self.details, self.path, self.warning, self.answers_title, self.answers,
                  self.review, self.history_title, self.history):
            layout.addWidget(w)
        layout.addLayout(buttons)
        layout.addStretch(1)
        self.setWidget(inner)
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.open_button.clicked.connect(lambda: self.case and self.open_requested.emit(self.case.id))
        self.patient_button.clicked.connect(lambda: self.case and self.patient_requested.emit(self.case.patient_id))
        self.show_case(None, None)

    def show_case(self, case: Case | None, check: FileCheck | None) -> None:
        self.case, self.check = case, check
        for w in (self.answers_title, self.open_button, self.patient_button, self.history_title, self.history):
            w.setVisible(case is not None)
        if case is None:
            self.picture.clear()
            self.picture.setText("No case selected")
            self.status.setText("Select a case to see it here.")
            for w in (self.details, self.path, self.answers, self.review):
                w.setText("")
            self.warning.hide()
            return
        self.status.setText(status_html(case))
        self.details.setText(details_line(case))
        self.path.setText(case.image_path)
        warning = check_html(check)
        self.warning.setText(warning)
        self.warning.setVisible(bool(warning))
        self.answers.setText(answers_html(case))
        self.review.setText(_review_html(case))
        self.patient_button.setEnabled(bool(case.patient_id))
        if case.patient_id:
            self.history_title.setText(f"<b>Grades over time</b> \u00b7 patient {html.escape(case.patient_id)}")
            self.history.set_history(None, case.id, "Reading the patient's history\u2026")
        else:
            self.history_title.setText("<b>Grades over time</b>")
            self.history.set_history(None, case.id, "No patient ID entered: no history to plot.")
        self.open_button.setToolTip("Show the image with its heat map, review it there" if check is None or check.ok
                                    else "Show the case; its file is not the one that was graded")
        self._show_picture()

    def show_history(self, case_id: int, history) -> None:
        """The patient's history (CaseLog.history), when it belongs to the case still shown."""
        if self.case is not None and self.case.id == case_id:
            self.history.set_history(history, case_id)

    def _show_picture(self) -> None:
        if self.case is None:
            return
        if self.check is not None and self.check.state in ("missing", "unreadable"):
            self.picture.clear()
            self.picture.setText("The image file is not there")
            return
        pixmap = self.previews.get(self.case.image_path)
        if pixmap is not None:
            self.picture.setPixmap(pixmap)
        else:
            self.picture.clear()
            self.picture.setText("The image cannot be read" if self.previews.known(self.case.image_path) else "\u2026")

    def _preview_ready(self, path: str) -> None:
        if self.case is not None and self.case.image_path == path:
            self._show_picture()


def _review_html(case: Case) -> str:
    parts = []
    if case.note:
        parts.append(f"<b>Note</b> {html.escape(case.note)}")
    if case.sublabels and any(v is not None for v in case.sublabels.values()):
        entered = ", ".join(f"{html.escape(k.replace('_', ' '))} {v}" for k, v in case.sublabels.items() if v is not None)
        parts.append(f"<b>Sub-labels entered</b> {entered}")
    parts.append(f"<span style='color:#6b7785'>Review priority {case.priority:.2f} = uncertainty "
                 f"{case.uncertainty:.2f} + disagreement {case.disagreement:.2f} + distance {case.ood:.2f}</span>")
    return "<br>".join(parts)
