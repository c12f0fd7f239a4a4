"""The report's pages: one A4 page per ReportItem, drawn with reportlab, written atomically.

Top to bottom: who and when; the model's notice; the photograph beside its heat map; the
grade with its calibrated confidence and probability bars beside the answers, the clinician's
review and the input gate; the sub-labels entered against those suggested; the patient's
grade history; the models and the file.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from engine import __version__
from engine.fsutil import atomic_write_bytes
from engine.overlay import colorize, overlay_cam
from engine.report.item import ReportItem
from engine.report.pen import ACCENT, ALERT, GOOD, INK, MUTED, PALE, RULE, WARN, Pen
from engine.report.plot import draw_history
from engine.schema import DEFAULT_SCHEMA, GRADES, Schema

PAGE_W, PAGE_H = A4
MARGIN = 36.0
INNER = PAGE_W - 2 * MARGIN
GAP = 14.0
COL = (INNER - GAP) / 2
IMAGE_BOX = 220.0  # points; the photograph and the heat map, side by side
MIN_IMAGE_BOX = 150.0  # smaller, when long notes or warnings would leave the history plot less than MIN_PLOT
MIN_PLOT = 125.0
PLOT_BOTTOM = PAGE_H - MARGIN - 60
MAX_IMAGE_PX = 720  # the embedded pictures' longer side (about 260 dpi in the box)
EYES = {"OD": "OD (right)", "OS": "OS (left)"}


def write_pdf(out: str | Path, items: Sequence[ReportItem], *, schema: Schema = DEFAULT_SCHEMA,
              colormap: str = "jet", generated_at: datetime | None = None) -> Path:
    """Write one page per item to `out` (temp file, then rename); returns the path."""
    from engine.report.collect import ReportError

    if not items:
        raise ReportError("a report needs at least one case")
    stamp = (generated_at or datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M %Z").strip()
    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=A4, pageCompression=1, invariant=generated_at is not None)
    canvas.setTitle("Cortical cataract grading report")
    canvas.setCreator(f"Cataract Grader {__version__}")
    for number, item in enumerate(items, 1):
        label = f"page {number} of {len(items)}"
        _Page(Pen(canvas, PAGE_H), item, schema, colormap, _box_for(item, schema, colormap)).draw(label, stamp)
        canvas.showPage()
    canvas.save()
    path = Path(out)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        raise ReportError(f"the report cannot be written to {path} ({e.strerror or e})") from None
    return path


def _box_for(item: ReportItem, schema: Schema, colormap: str) -> float:
    """The pictures' size that leaves the history plot at least MIN_PLOT high (laid out once without pictures)."""
    dry = _Page(Pen(Canvas(io.BytesIO(), pagesize=A4), PAGE_H), item, schema, colormap, IMAGE_BOX, measure=True)
    room = PLOT_BOTTOM - dry.draw("", "")
    return IMAGE_BOX if room >= MIN_PLOT else max(MIN_IMAGE_BOX, IMAGE_BOX - (MIN_PLOT - room))


def _picture(rgb: np.ndarray, jpeg: bool = True) -> ImageReader:
    """A picture to embed: at most MAX_IMAGE_PX on its longer side, as JPEG (quality 90) unless asked otherwise."""
    h, w = rgb.shape[:2]
    scale = min(1.0, MAX_IMAGE_PX / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg" if jpeg else ".png", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90] if jpeg else [])
    if not ok:
        raise ValueError("a picture for the report could not be encoded")
    return ImageReader(io.BytesIO(data.tobytes()))


def _pct(p: float) -> str:
    return f"{100 * p:.0f} %" if p >= 0.01 or p == 0 else "<1 %"


class _Page:
    def __init__(self, pen: Pen, item: ReportItem, schema: Schema, colormap: str, box: float,
                 measure: bool = False) -> None:
        self.pen, self.item, self.schema, self.colormap = pen, item, schema, colormap
        self.box, self.measure = box, measure  # measure: lay out only, to learn where the history starts
        self.answer = item.latest()
        self.student, self.teacher = item.latest("student"), item.latest("teacher")

    def draw(self, page_label: str, stamp: str) -> float:
        """Draw the page; returns where the history section starts."""
        y = self._header(MARGIN + 14, page_label)
        y = self._notices(y)
        y = self._pictures(y)
        y = max(self._grade(MARGIN, y + 12), self._side(MARGIN + COL + GAP, y + 12))
        y = self._sublabels(y + 16) + 12
        if not self.measure:
            self._history(y, PLOT_BOTTOM)
            self._footer(PAGE_H - MARGIN - 48, page_label, stamp)
        return y

    # ---- top ----------------------------------------------------------------------------------
    def _header(self, y: float, page_label: str) -> float:
        p, item = self.pen, self.item
        p.text(MARGIN, y, "Cortical cataract grading report", 15, bold=True)
        where = f"case {item.case.id}" if item.case else "not in the case log"
        p.text(PAGE_W - MARGIN, y, f"{where} · {page_label}", 8.5, color=MUTED, align="right")
        y += 18
        fields = (("Patient", item.patient_id or "not entered"), ("Eye", EYES.get(item.eye or "", "not entered")),
                  ("Visit", item.visit_date or "not entered"))
        x = MARGIN
        for label, value in fields:
            x += p.text(x, y, f"{label} ", 10, color=MUTED)
            x += p.text(x, y, value, 10, bold=True, max_width=170) + 18
        if item.case:
            p.text(PAGE_W - MARGIN, y, f"recorded {item.case.created_at[:16].replace('T', ' ')} UTC", 8,
                   color=MUTED, align="right")
        return y + 10

    def _notices(self, y: float) -> float:
        p = self.pen
        notices = sorted({n for a in self.item.answers if (n := self.item.notices.get(a.model_id))})
        for notice in notices:
            lines = p.lines(notice, INNER - 16, 9.5, bold=True, max_lines=3)
            h = 8 + 12 * len(lines)
            p.rect(MARGIN, y, INNER, h, fill=PALE, stroke=ALERT, width=1.2)
            for i, line in enumerate(lines):
                p.text(MARGIN + 8, y + 14 + 12 * i, line, 9.5, bold=True, color=ALERT)
            y += h + 5
        for warning in self.item.warnings:
            y = p.paragraph(MARGIN, y + 9, "⚠ " + warning if p.regular != "Helvetica" else "! " + warning,
                            INNER, 8.5, color=WARN, max_lines=2) - 9
        return y + 4

    def _pictures(self, y: float) -> float:
        p, item, box = self.pen, self.item, self.box
        if self.measure:
            return y + box + 29
        boxes = (MARGIN + COL / 2 - box / 2, MARGIN + COL + GAP + COL / 2 - box / 2)
        heat_rgb = None
        if item.image is not None and item.heat is not None and item.heat.cam is not None:
            heat_rgb = overlay_cam(item.image, item.heat.cam, self.colormap)
        for x, rgb in zip(boxes, (item.image, heat_rgb)):
            p.rect(x, y, box, box, fill=PALE)
            if rgb is not None:
                h, w = rgb.shape[:2]
                s = box / max(h, w)
                p.image(_picture(rgb), x + (box - w * s) / 2, y + (box - h * s) / 2, w * s, h * s)
        if item.image is None:
            p.text(boxes[0] + box / 2, y + box / 2, "the photograph cannot be shown", 8.5, color=MUTED,
                   align="center")
        if heat_rgb is None:
            why = "no heat map: no model was loaded" if item.image is not None else "no heat map"
            p.text(boxes[1] + box / 2, y + box / 2, why, 8.5, color=MUTED, align="center")
        cy = y + box + 11
        p.text(boxes[0], cy, "Photograph", 8.5, bold=True)
        p.text(boxes[0], cy + 11, Path(item.source).name, 7.5, color=MUTED, max_width=box)
        x = boxes[1] + p.text(boxes[1], cy, "Heat map", 8.5, bold=True)
        p.text(x, cy, self._heat_caption(), 8.5, max_width=MARGIN + INNER - x)
        if heat_rgb is not None:
            self._colour_scale(boxes[1], cy + 5)
        return cy + 18

    def _heat_caption(self) -> str:
        heat = self.item.heat
        if heat is None:
            return ""
        if heat.cam_target == "severity":
            return " · what raises the expected grade"
        return f" · what speaks for grade {heat.cam_target}"

    def _colour_scale(self, x: float, y: float) -> None:
        strip = colorize(np.linspace(0, 1, 128, dtype=np.float32)[None].repeat(4, 0), self.colormap)
        p = self.pen
        p.text(x, y + 6, "low", 7, color=MUTED)
        p.image(_picture(strip, jpeg=False), x + 16, y, 80, 6)
        p.text(x + 100, y + 6, "high (Grad-CAM)", 7, color=MUTED)

    # ---- middle -------------------------------------------------------------------------------
    def _grade(self, x: float, y: float) -> float:
        p, a = self.pen, self.answer
        y = p.heading(x, y, "Model grade", COL)
        if a is None:
            return p.paragraph(x, y, "no model answer", COL, color=MUTED)
        p.text(x, y + 20, str(a.grade), 30, bold=True, color=ACCENT)
        name = self._grade_name(a.grade)
        tx = x + 34
        p.text(tx, y + 2, f"confidence {_pct(a.confidence)} (calibrated)" + (f" · {name}" if name else ""), 9,
               bold=True, max_width=COL - 34)
        p.text(tx, y + 14, f"expected grade {a.expected_grade:.1f} · {a.role} {a.model_name}", 8, color=MUTED,
               max_width=COL - 34)
        y += 34
        final = self.item.case.final_grade if self.item.case else None
        for g, prob in zip(GRADES, a.probabilities):
            self._bar(x, y, g, prob, g == a.grade, g == final)
            y += 11.5
        return y + 2

    def _bar(self, x: float, y: float, grade: int, prob: float, chosen: bool, final: bool) -> None:
        p = self.pen
        bar_x, bar_w = x + 14, COL - 14 - 74
        p.text(x + 8, y + 7.5, str(grade), 8, bold=chosen, align="right")
        p.rect(bar_x, y, bar_w, 9, fill=PALE)
        if prob > 0:
            p.rect(bar_x, y, max(0.8, bar_w * prob), 9, fill=ACCENT if chosen else RULE)
        p.text(bar_x + bar_w + 4, y + 7.5, _pct(prob), 8, bold=chosen)
        if final:
            p.text(x + COL, y + 7.5, "final", 7.5, bold=True, color=GOOD, align="right")

    def _grade_name(self, grade: int) -> str:
        name = self.schema.grade_names[grade] if grade < len(self.schema.grade_names) else str(grade)
        return "" if name == str(grade) else name

    def _side(self, x: float, y: float) -> float:
        y = self._answers(x, y)
        y = self._review(x, y + 4)
        return self._gate(x, y + 4)

    def _answers(self, x: float, y: float) -> float:
        p = self.pen
        y = p.heading(x, y, "Answers", COL)
        cols = (x, x + 52, x + COL - 62, x + COL)
        for label, col, align in (("", 0, "left"), ("model", 1, "left"), ("grade", 2, "right"), ("conf.", 3, "right")):
            p.text(cols[col], y, label, 7.5, color=MUTED, align=align)
        y += 11
        for role, a in (("Student", self.student), ("Teacher", self.teacher)):
            p.text(cols[0], y, role, 8.5, bold=True)
            if a is None:
                why = "not asked (no sub-labels entered)" if role == "Teacher" else "no answer"
                p.text(cols[1], y, why, 8.5, color=MUTED)
            else:
                p.text(cols[1], y, a.model_name, 8.5, max_width=cols[2] - cols[1] - 34)
                p.text(cols[2], y, str(a.grade), 8.5, bold=True, align="right")
                p.text(cols[3], y, _pct(a.confidence), 8.5, align="right")
            y += 11
        if self.teacher is not None and self.teacher.sublabels_used is not None:
            given = sum(v is not None for v in self.teacher.sublabels_used.values())
            p.text(cols[1], y, f"with {given} of {len(self.teacher.sublabels_used)} sub-labels entered", 7.5,
                   color=MUTED)
            y += 10
        if len(self.item.answers) > 2:
            p.text(cols[1], y, f"{len(self.item.answers)} answers in all; the latest of each is shown", 7.5,
                   color=MUTED)
            y += 10
        return y

    def _review(self, x: float, y: float) -> float:
        p, case = self.pen, self.item.case
        y = p.heading(x, y, "Clinician's review", COL)
        if case is None:
            return p.paragraph(x, y, "not reviewed (not in the case log)", COL, 8.5, color=MUTED)
        if not case.reviewed:
            y = p.paragraph(x, y, "not reviewed", COL, 8.5, bold=True, color=WARN)
        else:
            verdict = "agreed with the model" if case.status == "agreed" else "corrected the model"
            p.text(x, y, f"Final grade {case.final_grade}", 10, bold=True, color=GOOD)
            p.text(x + 86, y, verdict, 8.5)
            y += 11
            y = p.paragraph(x, y, f"by {case.reviewed_by or 'unknown'}, {(case.reviewed_at or '')[:16].replace('T', ' ')} "
                                  "UTC", COL, 7.5, color=MUTED)
        if case.note:
            y = p.paragraph(x, y, f"Note: {case.note}", COL, 8.5, max_lines=4)
        return y

    def _gate(self, x: float, y: float) -> float:
        p, case = self.pen, self.item.case
        y = p.heading(x, y, "Input gate", COL)
        gate = case.gate if case else None
        if not gate:
            return p.paragraph(x, y, "not checked", COL, 8.5, color=MUTED)
        verdict = next((gate[k] for k in ("ok", "passed", "accepted") if isinstance(gate.get(k), bool)), None)
        if verdict is not None:
            p.text(x, y, "passed" if verdict else "failed", 9, bold=True, color=GOOD if verdict else ALERT)
            y += 11
        problems = [q.get("reason") for q in gate.get("problems") or () if isinstance(q, dict) and q.get("reason")]
        for reason in problems[:3]:
            y = p.paragraph(x, y, reason, COL, 7.5, color=ALERT, max_lines=2)
        rest = [f"{k}: {_value(v)}" for k, v in sorted(_flat(gate).items()) if _shown(k, v)]
        return p.paragraph(x, y, "; ".join(rest), COL, 7.5, color=MUTED, max_lines=3) if rest else y

    # ---- lower --------------------------------------------------------------------------------
    def _sublabels(self, y: float) -> float:
        p = self.pen
        y = p.heading(MARGIN, y, "Sub-labels: entered by the clinician, suggested by the student", INNER)
        entered = (self.item.case.sublabels if self.item.case else None) or {}
        suggested = self.student.sublabels_predicted if self.student else {}
        cols = (MARGIN, MARGIN + 150, MARGIN + 300)
        for text, col in (("sub-label", 0), ("entered", 1), ("suggested", 2)):
            p.text(cols[col], y, text, 7.5, color=MUTED)
        y += 11
        for s in self.schema.sublabels:
            e, g = entered.get(s.name), suggested.get(s.name)
            p.text(cols[0], y, s.name.replace("_", " "), 8.5, max_width=145)
            p.text(cols[1], y, _level(s, e), 8.5, max_width=145)
            differs = e is not None and g is not None and e != g
            p.text(cols[2], y, _level(s, g), 8.5, bold=differs,
                   color=WARN if differs else INK, max_width=120)
            p.text(PAGE_W - MARGIN, y, f"{s.minimum}-{s.maximum}", 7.5, color=MUTED, align="right")
            y += 10.5
        return y

    def _history(self, y: float, bottom: float) -> None:
        p, item = self.pen, self.item
        who = f" of patient {item.patient_id}" if item.patient_id else ""
        y = p.heading(MARGIN, y, f"Grade history{who}", INNER)
        draw_history(p, MARGIN, y - 4, INNER, bottom - y + 4, item.history, item.case.id if item.case else None)

    def _footer(self, y: float, page_label: str, stamp: str) -> None:
        p, item = self.pen, self.item
        p.line(MARGIN, y, PAGE_W - MARGIN, y)
        y += 10
        models = {a.model_id: a for a in item.answers}
        for a in list(models.values())[-3:]:
            notice = item.notices.get(a.model_id, "unknown (the model is not installed here)") or "none"
            p.text(MARGIN, y, f"{a.role} model {a.model_name} · id {a.model_id} · {a.arch} · notice: {notice}", 7,
                   color=MUTED, max_width=INNER)
            y += 9
        sha = item.answers[-1].image_sha256 if item.answers else ""
        p.text(MARGIN, y, f"image {item.source}" + (f" · SHA-256 {sha[:16]}…" if sha else ""), 7, color=MUTED,
               max_width=INNER)
        y = PAGE_H - MARGIN + 4
        p.text(MARGIN, y, f"Cataract Grader {__version__} · generated {stamp}", 7, color=MUTED)
        p.text(PAGE_W - MARGIN, y, page_label, 7, color=MUTED, align="right")


def _level(sub, value: int | None) -> str:
    """'1 · touches' for a named level, '4' for a count, '–' when not given."""
    if value is None:
        return "–"
    name = sub.level_name(value)
    return str(value) if name == str(value) else f"{value} · {name}"


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


_GATE_HIDDEN = ("ok", "passed", "accepted", "problems", "timings_ms.", "lens.")  # said above, or internals


def _shown(key: str, value: object) -> bool:
    """A gate entry worth a line: not the verdict or problems said above, not timings or the finder's evidence."""
    hidden = any(key == h or (h.endswith(".") and key.startswith(h)) for h in _GATE_HIDDEN)
    return not hidden and not (isinstance(value, float) and value != value)  # NaN: not measured


def _value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v)
    return str(v)


__all__ = ["write_pdf"]
