"""The answer: the grade as a big number, its calibrated confidence and the eight probabilities."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from cataract_app import theme
from cataract_app.grading.prob_bars import ProbabilityBars
from engine.results import GradeResult, ModelInfo
from engine.schema import DEFAULT_GRADE_DESCRIPTIONS, GRADES

ROLE_NAMES = {"student": "image-only model", "teacher": "fusion model (image + sub-labels)"}


def describe_model(model: ModelInfo | None) -> str:
    """'image-only model · ResNet18 demo (student-abc123)': who answered, for people."""
    if model is None:
        return "unknown model"
    role = ROLE_NAMES.get(model.role, model.role)
    return f"{role} \u00b7 {model.name} ({model.model_id})"


def grade_caption(grade: int, grade_names: Sequence[str]) -> str:
    """The schema's name for a grade when it says more than the number itself."""
    name = grade_names[grade] if 0 <= grade < len(grade_names) else str(grade)
    return "" if name == str(grade) else name


class DemoBanner(QLabel):
    """An amber strip shown whenever the answering model's card carries a notice."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setWordWrap(True)
        self.hide()

    def show_notice(self, notice: str | None) -> None:
        if notice:
            self.setText(f"\u26a0 {notice}")
            self.show()
        else:
            self.clear()
            self.hide()


class BusyMark(QLabel):
    """Three dots stepping a few times a second: shows life at almost no cost.

    An indeterminate QProgressBar repaints at the screen's rate, and every repaint of a
    Python-subclassed parent takes the GIL from the thread that is loading the models.
    """

    FRAMES = ("\u25cf \u25cb \u25cb", "\u25cb \u25cf \u25cb", "\u25cb \u25cb \u25cf")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setStyleSheet(f"color: {theme.ACCENT}; font-size: 8pt;")
        self._frame = 0
        self._timer = QTimer(self)
        self._timer.setInterval(350)
        self._timer.timeout.connect(self._step)
        self.hide()

    def run(self, on: bool) -> None:
        self.setVisible(on)
        if on and not self._timer.isActive():
            self._timer.start()
        elif not on:
            self._timer.stop()

    def is_running(self) -> bool:
        return self._timer.isActive()

    def _step(self) -> None:
        self._frame = (self._frame + 1) % len(self.FRAMES)
        self.setText(self.FRAMES[self._frame])


class GradePanel(QGroupBox):
    """Shows one GradeResult, or the state before it: empty, loading, grading, error."""

    def __init__(self, parent=None) -> None:
        super().__init__("Grade", parent)
        self._grade_names: tuple[str, ...] = tuple(str(g) for g in GRADES)
        self._descriptions: tuple[str, ...] = DEFAULT_GRADE_DESCRIPTIONS
        self.banner = DemoBanner()
        self.state = QLabel("Open a retro-illumination photograph (Ctrl+O) or drop one here.")
        self.state.setWordWrap(True)
        self.state.setObjectName("muted")
        self.busy = BusyMark()

        self.grade = QLabel("\u2013")
        self.grade.setObjectName("gradeBig")  # size and colour come from the style sheet
        self.grade.setMinimumWidth(72)
        self.grade.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title = QLabel("Cortical cataract grade (0\u20137)")
        self.title.setObjectName("muted")
        self.name = QLabel("")
        self.name.setObjectName("gradeName")
        self.description = QLabel("")  # what the grade on screen means, in the schema's words
        self.description.setWordWrap(True)
        self.confidence = QLabel("")
        self.expected = QLabel("")
        self.expected.setObjectName("muted")
        self.bars = ProbabilityBars()
        self.answered_by = QLabel("")
        self.answered_by.setObjectName("muted")
        self.answered_by.setWordWrap(True)

        self._result_box = QWidget()
        self._build_result_layout()
        layout = QVBoxLayout(self)
        layout.setSpacing(6)
        for w in (self.banner, self.state, self.busy, self._result_box):
            layout.addWidget(w)
        self._result_box.hide()
        self._result: GradeResult | None = None
        self.set_grade_descriptions(DEFAULT_GRADE_DESCRIPTIONS)

    def _build_result_layout(self) -> None:
        text = QVBoxLayout()
        text.setSpacing(2)
        for w in (self.title, self.name, self.description, self.confidence, self.expected):
            text.addWidget(w)
        text.addStretch(1)
        head = QHBoxLayout()
        head.addWidget(self.grade)
        head.addSpacing(10)
        head.addLayout(text, 1)
        box = QVBoxLayout(self._result_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(head)
        probs_title = QLabel("Probability per grade")
        probs_title.setObjectName("muted")
        box.addWidget(probs_title)
        box.addWidget(self.bars)
        box.addWidget(self.answered_by)

    # ---- states ----------------------------------------------------------------
    def set_grade_names(self, names: Sequence[str]) -> None:
        self._grade_names = tuple(names)

    def set_grade_descriptions(self, descriptions: Sequence[str]) -> None:
        """What each grade 0-7 means (the schema's grade_descriptions): shown with the grade and as tooltips."""
        self._descriptions = tuple(descriptions)
        self.bars.set_descriptions(self._descriptions)
        scale = "\n".join(f"{g} \u2013 {d}" for g, d in enumerate(self._descriptions))
        self.title.setToolTip(f"What the grades mean:\n{scale}")
        if self._result is not None:
            self.show_result(self._result)

    def describe(self, grade: int) -> str:
        return self._descriptions[grade] if 0 <= grade < len(self._descriptions) else ""

    def show_state(self, text: str, busy: bool = False, error: bool = False, keep_result: bool = False) -> None:
        """A line above (or instead of) the result: a hint, a busy state or an error."""
        self.state.setText(text)
        self.state.setObjectName("error" if error else "muted")
        self.state.style().unpolish(self.state)  # the style sheet keys on the object name
        self.state.style().polish(self.state)
        self.state.setVisible(bool(text))
        self.busy.run(busy)
        if not keep_result:
            self._result = None
            self._result_box.hide()

    def show_result(self, result: GradeResult) -> None:
        self._result = result
        self.show_state("", keep_result=True)
        self.grade.setText(str(result.grade))
        basis = "image + sub-labels" if result.model and result.model.role == "teacher" else "image only"
        self.title.setText(f"Cortical cataract grade (0\u20137) \u00b7 {basis}")
        caption = grade_caption(result.grade, self._grade_names)
        self.name.setText(caption)
        self.name.setVisible(bool(caption))
        meaning = self.describe(result.grade)
        self.description.setText(meaning)
        self.description.setVisible(bool(meaning))
        self.grade.setToolTip(f"Grade {result.grade}: {meaning}" if meaning else "")
        low = result.confidence < theme.LOW_CONFIDENCE
        review = f" \u2013 <span style='color:{theme.WARN_TEXT}'>low, review carefully</span>" if low else ""
        self.confidence.setText(f"<b>{result.confidence * 100:.0f} %</b> confidence (calibrated){review}")
        self.expected.setText(f"Expected grade {result.expected_grade:.1f}")
        self.bars.set_probabilities(result.probabilities, result.grade)
        self.answered_by.setText(f"Answered by the {describe_model(result.model)}")
        self.banner.show_notice(result.model.notice if result.model else None)
        self._result_box.show()

    def result(self) -> GradeResult | None:
        return self._result

    def grade_text(self) -> str:
        """The grade on screen, or '' when none is shown."""
        return self.grade.text() if self._result is not None else ""
