"""A patient's grades over time: each eye's visits in date order, what the app's plot and the report draw.

One row per case of the patient: the visit date (or, when none was entered, the day the case
was recorded, flagged), the latest answer's grade, model id and role, and the clinician's final
grade. Read in one query from the `cases` table and each case's latest answer.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime

from engine.cases.model import EYES, CaseLogError, check_patient_id

_SQL = (
    "SELECT c.id, c.eye, c.visit_date, c.created_at, c.model_grade, c.model_confidence, c.model_name, a.model_id, "
    "a.role, c.final_grade, c.status, c.image_path FROM cases c "
    "LEFT JOIN answers a ON a.id = (SELECT max(id) FROM answers WHERE case_id = c.id) "
    "WHERE c.patient_id = ?"
)


@dataclass(frozen=True)
class Visit:
    """One case of the patient, as a point of the history plot."""

    case_id: int
    eye: str | None
    date: str  # YYYY-MM-DD: the visit date, else the (local) day the case was recorded
    date_is_recorded: bool  # True when no visit date was entered and `date` is the recording day
    created_at: str
    model_grade: int | None  # the latest answer's
    model_confidence: float | None
    model_name: str | None
    model_id: str | None
    model_role: str | None  # student | teacher
    final_grade: int | None  # the clinician's; None while open
    status: str
    image_path: str


@dataclass(frozen=True)
class PatientHistory:
    """Every case of one patient, per eye, in date order (ties: the order they were recorded)."""

    patient_id: str
    od: tuple[Visit, ...] = ()
    os: tuple[Visit, ...] = ()
    no_eye: tuple[Visit, ...] = field(default=())  # cases whose eye was not entered

    def eye(self, eye: str | None) -> tuple[Visit, ...]:
        """The visits of "OD", "OS", or None (no eye entered)."""
        return {"OD": self.od, "OS": self.os, None: self.no_eye}[eye]

    @property
    def visits(self) -> tuple[Visit, ...]:
        """All visits, in date order."""
        return tuple(sorted((*self.od, *self.os, *self.no_eye), key=_order))

    def __len__(self) -> int:
        return len(self.od) + len(self.os) + len(self.no_eye)


def patient_history(conn: sqlite3.Connection, patient_id: str) -> PatientHistory:
    """The history of one patient (exact ID); empty when the patient has no case."""
    pid = check_patient_id(patient_id)
    if pid is None:
        raise CaseLogError("a patient history needs a patient ID")
    visits = [_visit(row) for row in conn.execute(_SQL, (pid,))]
    by_eye = {e: tuple(sorted((v for v in visits if v.eye == e), key=_order)) for e in (*EYES, None)}
    return PatientHistory(pid, od=by_eye["OD"], os=by_eye["OS"], no_eye=by_eye[None])


def _visit(row: tuple) -> Visit:
    (case_id, eye, visit_date, created_at, grade, conf, name, model_id, role, final, status, path) = row
    day = visit_date or _local_day(created_at)
    return Visit(case_id, eye, day, visit_date is None, created_at, grade, conf, name, model_id, role, final,
                 status, path)


def _local_day(utc_stamp: str) -> str:
    return datetime.fromisoformat(utc_stamp.replace("Z", "+00:00")).astimezone().date().isoformat()


def _order(v: Visit) -> tuple:
    return v.date, v.created_at, v.case_id
