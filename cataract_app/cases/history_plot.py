"""A patient's grades over time, painted with QPainter: each eye's model grades, the clinician's final grades.

The data is `CaseLog.history(patient_id)`, the same the report's plot draws (engine.report.plot),
and the marks mean the same: a line and rings per eye (OD blue, OS orange, no eye grey), green
diamonds for the final grades, a dashed line with the model id where the answering model
changed, a larger ring on the case shown. `series()` is what is drawn, for tests and callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from engine.cases import PatientHistory, Visit
from engine.schema import GRADES

SERIES = (("OD", "OD (right)", "#1f5fa8"), ("OS", "OS (left)", "#c2571a"), (None, "no eye", "#6d7580"))
FINAL, MUTED, RULE, INK = "#1d7a3a", "#7a8591", "#e3e7eb", "#26313b"


@dataclass(frozen=True)
class Point:
    """One visit as plotted: its day, the model's grade, the final grade, and what it marks."""

    case_id: int
    day: date
    model_grade: int | None
    final_grade: int | None
    model_id: str | None
    date_is_recorded: bool


def series(history: PatientHistory | None) -> dict[str | None, list[Point]]:
    """Eye ("OD", "OS", None) -> its visits in date order, only the eyes that have any."""
    if history is None:
        return {}
    out = {}
    for eye, _label, _colour in SERIES:
        visits = history.eye(eye)
        if visits:
            out[eye] = [_point(v) for v in visits]
    return out


def model_starts(history: PatientHistory | None) -> list[tuple[date, str]]:
    """(day, model id) of the first visit and of each visit answered by another model than the visit before."""
    starts, last = [], None
    for v in history.visits if history else ():
        if v.model_id and v.model_id != last:
            starts.append((date.fromisoformat(v.date), v.model_id))
            last = v.model_id
    return starts


def model_changes(history: PatientHistory | None) -> list[tuple[date, str]]:
    """(day, model id) of each visit answered by another model than the visit before (a dashed line)."""
    return model_starts(history)[1:]


def _point(v: Visit) -> Point:
    return Point(v.case_id, date.fromisoformat(v.date), v.model_grade, v.final_grade, v.model_id, v.date_is_recorded)


class HistoryPlot(QWidget):
    """The plot; `set_history(history, current_case_id)` shows a patient, `set_history(None)` a hint."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.history: PatientHistory | None = None
        self.current: int | None = None
        self.hint = "No patient ID: no history to plot."
        self.setMinimumHeight(190)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(320, 210)

    def set_history(self, history: PatientHistory | None, current: int | None = None, hint: str | None = None) -> None:
        self.history, self.current = history, current
        if hint is not None:
            self.hint = hint
        elif history is None:
            self.hint = "No patient ID: no history to plot."
        self.setToolTip(self._tooltip())
        self.update()

    def series(self) -> dict[str | None, list[Point]]:
        return series(self.history)

    # ---- painting -------------------------------------------------------------------------------
    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("#ffffff"))
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        p.setFont(font)
        data = self.series()
        if not data:
            p.setPen(QColor(MUTED))
            if self.history is None:
                text = self.hint
            else:
                text = "No graded visit of this patient." if len(self.history) else "No recorded visit of this patient."
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)
            p.end()
            return
        box = QRectF(self.rect()).adjusted(26, 40, -12, -24)
        days = [pt.day.toordinal() for pts in data.values() for pt in pts]
        lo, hi = min(days), max(days)

        def px(day: date) -> float:
            if hi == lo:
                return box.center().x()
            return box.left() + 9 + (box.width() - 18) * (day.toordinal() - lo) / (hi - lo)

        def py(grade: float) -> float:
            return box.bottom() - box.height() * grade / GRADES[-1]

        self._axes(p, box, px, py, data)
        self._changes(p, box, px)
        for eye, _label, colour in SERIES:
            self._series(p, data.get(eye, []), QColor(colour), px, py)
        self._legend(p, data)
        p.end()

    def _axes(self, p: QPainter, box: QRectF, px, py, data) -> None:
        for g in GRADES:
            p.setPen(QPen(QColor(MUTED if g == 0 else RULE), 1))
            p.drawLine(QPointF(box.left(), py(g)), QPointF(box.right(), py(g)))
            p.setPen(QColor(MUTED))
            p.drawText(QRectF(0, py(g) - 7, box.left() - 5, 14), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       str(g))
        shown: list[tuple[float, float]] = []
        metrics = p.fontMetrics()
        points = sorted((pt for pts in data.values() for pt in pts), key=lambda q: q.day)
        for pt in [points[0], points[-1], *points[1:-1]]:  # the ends first: the span is always readable
            label = pt.day.isoformat() + ("*" if pt.date_is_recorded else "")
            half = metrics.horizontalAdvance(label) / 2
            centre = min(max(px(pt.day), box.left() + half), box.right() - half)
            if all(centre - half > b + 4 or centre + half < a - 4 for a, b in shown):
                p.drawText(QRectF(centre - half - 2, box.bottom() + 4, 2 * half + 4, 14), Qt.AlignmentFlag.AlignCenter,
                           label)
                shown.append((centre - half, centre + half))

    def _changes(self, p: QPainter, box: QRectF, px) -> None:
        """The model id over the first visit it answered; a dashed line where it changed."""
        pen = QPen(QColor(MUTED), 1, Qt.PenStyle.DashLine)
        label_end = -1e9
        for i, (day, model_id) in enumerate(model_starts(self.history)):
            x, label = px(day), f"model {model_id[:8]}"
            if i:
                p.setPen(pen)
                p.drawLine(QPointF(x, box.top() - 4), QPointF(x, box.bottom()))
            start = min(x + 3, box.right() - p.fontMetrics().horizontalAdvance(label))
            if start > label_end:
                p.setPen(QColor(MUTED))
                p.drawText(QPointF(start, box.top() - 5), label)
                label_end = start + p.fontMetrics().horizontalAdvance(label) + 6

    def _series(self, p: QPainter, points: list[Point], colour: QColor, px, py) -> None:
        graded = [pt for pt in points if pt.model_grade is not None]
        p.setPen(QPen(colour, 1.6))
        path = QPainterPath()
        for i, pt in enumerate(graded):
            xy = QPointF(px(pt.day), py(pt.model_grade))
            path.moveTo(xy) if i == 0 else path.lineTo(xy)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawPath(path)
        for pt in graded:
            xy = QPointF(px(pt.day), py(pt.model_grade))
            p.setPen(QPen(colour, 1.6))
            p.setBrush(QColor("#ffffff"))
            p.drawEllipse(xy, 3.5, 3.5)
            if pt.case_id == self.current:
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawEllipse(xy, 7, 7)
        for pt in points:
            if pt.final_grade is not None:
                _diamond(p, QPointF(px(pt.day), py(pt.final_grade)), 4.5)

    def _legend(self, p: QPainter, data) -> None:
        x, y = 26.0, 14.0
        metrics = p.fontMetrics()
        for eye, label, colour in SERIES:
            if eye not in data:
                continue
            p.setPen(QPen(QColor(colour), 1.6))
            p.drawLine(QPointF(x, y), QPointF(x + 14, y))
            p.setPen(QColor(INK))
            p.drawText(QPointF(x + 18, y + 4), label)
            x += 18 + metrics.horizontalAdvance(label) + 12
        _diamond(p, QPointF(x + 4, y), 4)
        p.setPen(QColor(INK))
        p.drawText(QPointF(x + 12, y + 4), "final grade")
        if self.current is not None:
            x += 12 + metrics.horizontalAdvance("final grade") + 12
            p.setPen(QPen(QColor(MUTED), 1.2))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawEllipse(QPointF(x + 5, y), 5, 5)
            p.setPen(QColor(INK))
            p.drawText(QPointF(x + 14, y + 4), "this case")

    def _tooltip(self) -> str:
        if self.history is None or len(self.history) == 0:
            return ""
        lines = []
        for v in self.history.visits:
            final = f", final {v.final_grade}" if v.final_grade is not None else ""
            lines.append(f"{v.date}{'*' if v.date_is_recorded else ''} {v.eye or 'no eye'}: "
                         f"grade {v.model_grade if v.model_grade is not None else '-'}{final} (case {v.case_id}, "
                         f"{v.model_name or 'no answer'} {(v.model_id or '')[:8]})")
        if any(v.date_is_recorded for v in self.history.visits):
            lines.append("* no visit date entered: the day the case was recorded")
        return "\n".join(lines)


def _diamond(p: QPainter, c: QPointF, r: float) -> None:
    poly = QPolygonF([QPointF(c.x(), c.y() - r), QPointF(c.x() + r, c.y()), QPointF(c.x(), c.y() + r),
                      QPointF(c.x() - r, c.y())])
    p.setPen(QPen(QColor(FINAL), 1))
    p.setBrush(QColor(FINAL))
    p.drawPolygon(poly)
