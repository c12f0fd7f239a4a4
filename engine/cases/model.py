"""The case model: plain frozen dataclasses that cross the engine's boundary (no sqlite rows).

A case is one photograph (found again by its SHA-256), the patient, eye and visit it belongs
to, every model answer it was given, the clinician's final grade and the audit trail.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from engine.errors import EngineError
from engine.schema import NUM_GRADES

OPEN, AGREED, CORRECTED = "open", "agreed", "corrected"
STATUSES = (OPEN, AGREED, CORRECTED)
REVIEWED = (AGREED, CORRECTED)
EYES = ("OD", "OS")
FORMULA_START = ("=", "+", "-", "@")  # what a spreadsheet reads as the start of a formula
MAX_PATIENT_ID = 64
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


class CaseLogError(EngineError):
    """A case-log request that cannot be done, or a database that cannot be used, in one sentence."""


@dataclass(frozen=True)
class Answer:
    """One model's answer to one case; grading again adds another, nothing is overwritten."""

    id: int
    case_id: int
    created_at: str
    model_id: str
    model_name: str
    role: str  # "student" | "teacher"
    arch: str
    grade: int
    probabilities: tuple[float, ...]  # calibrated
    confidence: float
    expected_grade: float
    sublabels_predicted: dict[str, int]
    sublabels_used: dict[str, int | None] | None  # the form's values when the teacher answered
    image_sha256: str  # the image as it was when this answer was given
    device: str


@dataclass(frozen=True)
class AuditEntry:
    """Who did what to a case, and when."""

    id: int
    case_id: int
    at: str
    user: str
    action: str  # recorded, answer, moved, details, sublabels, gate, agree, correct, reopen
    detail: dict


@dataclass(frozen=True)
class CaseSummary:
    """One row of the case table: enough to list, sort, filter and pick the next case to review."""

    id: int
    created_at: str
    image_path: str
    patient_id: str | None
    eye: str | None
    visit_date: str | None
    model_grade: int | None  # the latest answer's grade
    model_confidence: float | None
    model_name: str | None
    final_grade: int | None  # the clinician's; None while the case is open
    status: str  # open | agreed | corrected
    priority: float  # review order: higher is reviewed first (see engine.cases.review)
    reviewed_at: str | None

    @property
    def reviewed(self) -> bool:
        return self.status in REVIEWED


@dataclass(frozen=True)
class Case(CaseSummary):
    """A whole case: the summary plus the image hash, inputs, review, answers and audit trail."""

    updated_at: str
    image_sha256: str
    gate: dict | None  # the input gate's result, as it gave it
    sublabels: dict[str, int | None] | None  # what the clinician entered
    note: str | None
    reviewed_by: str | None
    reviewed_answer_id: int | None  # the answer the clinician agreed with or corrected
    uncertainty: float
    disagreement: float
    ood: float
    answers: tuple[Answer, ...]
    audit: tuple[AuditEntry, ...]

    @property
    def latest_answer(self) -> Answer | None:
        return self.answers[-1] if self.answers else None


@dataclass(frozen=True)
class FileCheck:
    """Whether a case's image is still the file that was graded."""

    state: str  # ok | missing | changed | unreadable
    message: str

    @property
    def ok(self) -> bool:
        return self.state == "ok"


# ---- values -----------------------------------------------------------------------------------


def now_utc() -> str:
    """A timestamp that sorts as text: UTC, microseconds, 'Z'."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalise_time(text: str) -> str:
    """An ISO date or time (naive means local time) in the stored form, so it compares as text."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CaseLogError(f"{text!r} is not a date or time; use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the user's local time
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(text: str) -> str:
    if not isinstance(text, str) or not re.fullmatch(r"[0-9a-f]{64}", text):
        raise CaseLogError(f"{text!r} is not a SHA-256 (64 lower-case hexadecimal digits)")
    return text


def check_file(path: str, sha256: str) -> FileCheck:
    """Compare the file at `path` with the hash recorded for the case."""
    p = Path(path)
    if not p.is_file():
        return FileCheck("missing", f"the image {path} is no longer there (moved or deleted); grade it again from "
                                    "its new place to relink the case")
    try:
        actual = sha256_file(p)
    except OSError as e:
        return FileCheck("unreadable", f"the image {path} cannot be read ({e.strerror or e})")
    if actual != sha256:
        return FileCheck("changed", f"the image {path} has changed since it was graded (its SHA-256 differs); "
                                    "the answers describe the earlier file")
    return FileCheck("ok", "the image is the file that was graded")


def check_grade(grade: object) -> int:
    if isinstance(grade, bool) or not isinstance(grade, int) or not 0 <= grade < NUM_GRADES:
        raise CaseLogError(f"a grade is a whole number 0-{NUM_GRADES - 1}, not {grade!r}")
    return grade


def check_eye(eye: str | None) -> str | None:
    if eye is None or not eye.strip():
        return None
    value = eye.strip().upper()
    if value not in EYES:
        raise CaseLogError(f"eye {eye!r} is neither OD (right) nor OS (left)")
    return value


def check_visit_date(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise CaseLogError(f"visit date {text!r} is not a date in the form YYYY-MM-DD") from None


def is_formula_like(text: str) -> bool:
    """True when a spreadsheet would read `text` as a formula: it starts with = + - @ and is not a plain number."""
    return text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text)


def check_patient_id(text: str | None) -> str | None:
    """A patient ID kept exactly as typed (trimmed); refused when it could not be exported safely."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    if len(value) > MAX_PATIENT_ID:
        raise CaseLogError(f"patient ID {value[:20]!r}... is longer than {MAX_PATIENT_ID} characters")
    if any(not ch.isprintable() for ch in value):
        raise CaseLogError(f"patient ID {value!r} holds a control character (a tab or line break)")
    if is_formula_like(value):
        raise CaseLogError(f"patient ID {value!r} begins with {value[0]!r}, which spreadsheets read as a formula; "
                           "such an ID may begin with = + - @ only when it is a plain number")
    return value


def probabilities_ok(probs: tuple[float, ...]) -> bool:
    return len(probs) == NUM_GRADES and all(math.isfinite(p) and p >= 0 for p in probs)


def to_json(value: object) -> str | None:
    """JSON text for a column; a dataclass (the gate's result, later) is stored as its fields."""
    if value is None:
        return None
    from dataclasses import asdict, is_dataclass

    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    return json.dumps(value, sort_keys=True, default=str)


def from_json(text: str | None):
    return None if text is None else json.loads(text)
