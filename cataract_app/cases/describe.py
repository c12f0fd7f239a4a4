"""A case in words for the review box and the Cases panel's detail pane (plain text and small HTML)."""

from __future__ import annotations

import html

from cataract_app import theme
from cataract_app.cases.table_model import STATUS_COLOURS, local_time
from engine.cases import AGREED, CORRECTED, Case, FileCheck

ROLE_WORDS = {"student": "image only", "teacher": "image + sub-labels"}


def status_sentence(case: Case) -> str:
    """'open, not reviewed yet' / 'agreed: grade 3, by dr-a, 2026-05-01 14:02' / 'corrected to 5 (model 3), ...'."""
    if case.status == AGREED:
        head = f"agreed: grade {case.final_grade}"
    elif case.status == CORRECTED:
        head = f"corrected to {case.final_grade} (model {_reviewed_grade(case)})"
    else:
        return "open, not reviewed yet"
    return f"{head}, by {case.reviewed_by}, {local_time(case.reviewed_at)}"


def _reviewed_grade(case: Case) -> str:
    for a in case.answers:
        if a.id == case.reviewed_answer_id:
            return str(a.grade)
    return str(case.model_grade)


def status_html(case: Case) -> str:
    colour = STATUS_COLOURS.get(case.status, theme.TEXT)
    return (f"<b>Case {case.id}</b> \u00b7 <span style='color:{colour}; font-weight:600'>"
            f"{html.escape(status_sentence(case))}</span>")


def answers_html(case: Case, limit: int | None = None) -> str:
    """Each model answer on one line: when, model (role), grade and confidence; the newest first."""
    answers = list(reversed(case.answers))
    shown = answers if limit is None else answers[:limit]
    lines = []
    for a in shown:
        role = ROLE_WORDS.get(a.role, a.role)
        changed = " \u00b7 <i>earlier file</i>" if a.image_sha256 != case.image_sha256 else ""
        lines.append(f"{html.escape(local_time(a.created_at))} \u00b7 {html.escape(a.model_name)} ({role}): "
                     f"<b>grade&nbsp;{a.grade}</b>,&nbsp;{a.confidence * 100:.0f}&nbsp;%{changed}")
    if limit is not None and len(answers) > limit:
        lines.append(f"\u2026 and {len(answers) - limit} earlier")
    return "<br>".join(lines) if lines else "No model answer yet."


def check_html(check: FileCheck | None) -> str:
    """A warning when the file moved or changed since grading; '' when it is intact (or unknown)."""
    if check is None or check.ok:
        return ""
    return f"\u26a0 {html.escape(check.message[0].upper() + check.message[1:])}."


def details_line(case: Case) -> str:
    parts = [f"patient {case.patient_id}" if case.patient_id else "no patient ID",
             case.eye or "eye not given", f"visit {case.visit_date}" if case.visit_date else "no visit date"]
    return " \u00b7 ".join(parts)
