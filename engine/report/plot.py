"""The patient's grade history on the page: each eye's model grades over the visit dates, the clinician's final
grades, and where the answering model changed."""

from __future__ import annotations

from datetime import date

from reportlab.lib.colors import HexColor

from engine.cases import PatientHistory, Visit
from engine.report.pen import INK, MUTED, PALE, RULE, Pen
from engine.schema import GRADES

SERIES = (("OD", "OD (right)", HexColor("#1f5fa8")), ("OS", "OS (left)", HexColor("#c2571a")),
          (None, "eye not entered", HexColor("#6d7580")))
FINAL = HexColor("#1d7a3a")


def draw_history(pen: Pen, x: float, y: float, w: float, h: float, history: PatientHistory | None,
                 current: int | None) -> None:
    """The plot in the box (x, y, w, h) measured from the top-left; `current` is this page's case id."""
    if history is None or len(history) == 0:
        pen.rect(x, y, w, h, fill=PALE)
        why = "no patient ID: no history to plot" if history is None else "no recorded visit of this patient"
        pen.text(x + w / 2, y + h / 2 + 3, why, 9, color=MUTED, align="center")
        return
    left, right, top, bottom = x + 22, x + w - 8, y + 30, y + h - 26
    days = [_day(v) for v in history.visits]
    lo, hi = min(days), max(days)
    span = max(hi - lo, 1)

    def px(v: Visit) -> float:
        return (left + right) / 2 if hi == lo else left + 6 + (right - left - 12) * (_day(v) - lo) / span

    def py(grade: float) -> float:
        return bottom - (bottom - top) * grade / GRADES[-1]

    _axes(pen, left, right, top, bottom, py, history, px)
    _model_changes(pen, history, px, top, bottom, right)
    for eye, _label, colour in SERIES:
        visits = history.eye(eye)
        pts = [(px(v), py(v.model_grade)) for v in visits if v.model_grade is not None]
        for (x1, y1), (x2, y2) in zip(pts, pts[1:]):
            pen.line(x1, y1, x2, y2, colour, 1.2)
        for v in visits:
            _marks(pen, v, px(v), py, colour, v.case_id == current)
    _legend(pen, x + 22, y + 10)


def _day(v: Visit) -> int:
    return date.fromisoformat(v.date).toordinal()


def _axes(pen: Pen, left, right, top, bottom, py, history: PatientHistory, px) -> None:
    for g in GRADES:
        pen.line(left, py(g), right, py(g), RULE if g else MUTED, 0.4 if g else 0.7)
        pen.text(left - 5, py(g) + 2.5, str(g), 7, color=MUTED, align="right")
    shown: list[tuple[float, float]] = []
    for v in history.visits:  # date labels that do not overlap, kept inside the plot's width
        xx = px(v)
        label = v.date + ("*" if v.date_is_recorded else "")
        half = pen.width(label, 7) / 2
        centre = min(max(xx, left + half), right - half)
        if all(centre - half > b + 4 or centre + half < a - 4 for a, b in shown):
            pen.line(xx, bottom, xx, bottom + 3, MUTED, 0.6)
            pen.text(centre, bottom + 11, label, 7, color=MUTED, align="center")
            shown.append((centre - half, centre + half))
    if any(v.date_is_recorded for v in history.visits):
        pen.text(right, bottom + 21, "* no visit date entered: the day the case was recorded", 6.5, color=MUTED,
                 align="right")


def _model_changes(pen: Pen, history: PatientHistory, px, top, bottom, right) -> None:
    """A dashed line where the answering model differs from the visit before, labelled with the model id."""
    last, label_end = None, -1e9
    for v in history.visits:
        if v.model_id is None or v.model_id == last:
            continue
        xx = px(v)
        label = f"model {v.model_id[:8]}"
        if last is not None:
            pen.line(xx, top - 8, xx, bottom, MUTED, 0.6, dash=(2, 2))
        start = min(xx + 2, right - pen.width(label, 6.5))
        if start > label_end:
            pen.text(start, top - 10, label, 6.5, color=MUTED)
            label_end = start + pen.width(label, 6.5) + 4
        last = v.model_id


def _marks(pen: Pen, v: Visit, x: float, py, colour, current: bool) -> None:
    c = pen.c
    if v.model_grade is not None:
        c.setStrokeColor(colour)
        c.setFillColor(HexColor("#ffffff"))
        c.setLineWidth(1.2)
        c.circle(x, pen.height - py(v.model_grade), 2.8, stroke=1, fill=1)
        if current:
            c.setLineWidth(0.8)
            c.circle(x, pen.height - py(v.model_grade), 5.5, stroke=1, fill=0)
    if v.final_grade is not None:
        _diamond(pen, x, py(v.final_grade), 3.4)


def _diamond(pen: Pen, x: float, y: float, r: float) -> None:
    c = pen.c
    path = c.beginPath()
    yy = pen.height - y
    path.moveTo(x, yy + r)
    path.lineTo(x + r, yy)
    path.lineTo(x, yy - r)
    path.lineTo(x - r, yy)
    path.close()
    c.setFillColor(FINAL)
    c.setStrokeColor(FINAL)
    c.drawPath(path, stroke=1, fill=1)


def _legend(pen: Pen, x: float, y: float) -> None:
    """One line above the plot: the eyes' colours, the final grade's diamond, the ring of this case."""
    for _eye, label, colour in SERIES[:2]:
        pen.line(x, y - 3, x + 14, y - 3, colour, 1.2)
        pen.c.setStrokeColor(colour)
        pen.c.circle(x + 7, pen.height - y + 3, 2.4, stroke=1, fill=0)
        x += 18 + pen.text(x + 18, y, f"model grade, {label}", 7, color=INK) + 12
    _diamond(pen, x + 4, y - 3, 3.2)
    x += 12 + pen.text(x + 12, y, "clinician's final grade", 7, color=INK) + 12
    pen.c.setStrokeColor(MUTED)
    pen.c.circle(x + 5, pen.height - y + 3, 5, stroke=1, fill=0)
    pen.text(x + 14, y, "this case", 7, color=INK)
