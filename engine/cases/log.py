"""`CaseLog`: record graded images as cases, review them, and read them back.

Every write is one transaction (BEGIN IMMEDIATE ... COMMIT) that also appends to the audit
trail, so a kill at any moment leaves the database as it was before or after that write.
A photograph is found again by its SHA-256: grading it again (another model, the teacher
with sub-labels, or the same file from a new folder) adds an answer to its case.
"""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from engine.cases import db, queries
from engine.cases.model import (
    AGREED,
    CORRECTED,
    OPEN,
    REVIEWED,
    Case,
    CaseLogError,
    CaseSummary,
    FileCheck,
    check_eye,
    check_file,
    check_grade,
    check_patient_id,
    check_sha256,
    check_visit_date,
    now_utc,
    probabilities_ok,
    sha256_file,
    to_json,
)
from engine.cases.queries import CaseFilter
from engine.results import GradeResult
from engine.schema import NUM_GRADES

_UNSET = object()
DETAILS = ("patient_id", "eye", "visit_date")


def current_user() -> str:
    """The OS login name, which the audit trail records unless a user is given."""
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):
        return os.environ.get("USERNAME") or os.environ.get("USER") or "unknown"


class CaseLog:
    """The case log in one SQLite file; open it with `CaseLog.open()` (or as a context manager)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, notices: list[str], user: str | None = None) -> None:
        self._conn = conn
        self.path = path
        self.notices = tuple(notices)  # sentences for the user: a damaged file that was set aside
        self.user = user or current_user()
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: str | Path | None = None, user: str | None = None) -> CaseLog:
        """Open (or create) the case log: `path`, else CATARACT_GRADER_CASES_DB, else beside the model store."""
        p = Path(path).expanduser() if path is not None else db.default_db_path()
        conn, notices = db.open_database(p)
        return cls(conn, p, notices, user)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> CaseLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _guard(self, write: bool = False, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, inside a transaction when writing; SQLite errors become sentences."""
        with self._lock:
            try:
                if write:
                    with db.transaction(self._conn, durable) as conn:
                        yield conn
                else:
                    yield self._conn
            except sqlite3.Error as e:
                raise db.sentence(e, self.path) from None

    # ---- recording ------------------------------------------------------------------------------
    def record(self, result: GradeResult, image: str | Path | None = None, *, patient_id: str | None = None,
               eye: str | None = None, visit_date: str | None = None, gate: object = None,
               sublabels: Mapping[str, int | None] | None = None, user: str | None = None,
               image_sha256: str | None = None) -> Case:
        """Keep a graded image: a new case, or one more answer on the case of the same photograph.

        `image` defaults to the result's source file. Patient, eye and date fill blanks of an
        existing case; a different value is refused rather than overwritten. `gate` is the input
        gate's result (a dict or dataclass); `sublabels` are the values the clinician entered.
        `image_sha256` may be given when the caller hashed the file already (while the model ran).
        """
        source = image if image is not None else result.source
        if source is None:
            raise CaseLogError("a case needs the image file it was graded from; this result has no source path")
        path = str(Path(source).expanduser().resolve())
        _check_result(result)
        details = {"patient_id": check_patient_id(patient_id), "eye": check_eye(eye),
                   "visit_date": check_visit_date(visit_date)}
        sha = check_sha256(image_sha256) if image_sha256 is not None else hash_image(path)
        who, at = user or self.user, now_utc()
        typed = sublabels is not None or any(v is not None for v in details.values())
        with self._guard(write=True, durable=typed) as conn:  # only what a person typed needs the fsync
            case_id = queries.find_by_image(conn, sha)
            if case_id is None:
                case_id = self._new_case(conn, path, sha, details, at, who)
            else:
                self._update_existing(conn, case_id, path, details, at, who)
            if gate is not None:
                self._set(conn, case_id, "gate", {"gate_json": to_json(gate)}, {}, at, who)
            if sublabels is not None:
                self._set(conn, case_id, "sublabels", {"sublabels_json": to_json(dict(sublabels))},
                          {"sublabels": dict(sublabels)}, at, who)
            self._add_answer(conn, case_id, result, sha, at, who)
        return self.get(case_id)

    def add_answer(self, case_id: int, result: GradeResult, user: str | None = None) -> Case:
        """Another model's answer to an existing case (hashes the case's file as it is now)."""
        _check_result(result)
        case = self.get(case_id)
        try:
            sha = sha256_file(case.image_path)
        except OSError:
            sha = case.image_sha256  # graded from an array or a copy while the file is away
        with self._guard(write=True, durable=False) as conn:
            self._add_answer(conn, case.id, result, sha, now_utc(), user or self.user)
        return self.get(case_id)

    def _new_case(self, conn, path: str, sha: str, details: dict, at: str, who: str) -> int:
        cur = conn.execute(
            "INSERT INTO cases (created_at, updated_at, image_path, image_sha256, patient_id, eye, visit_date) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (at, at, path, sha, *(details[k] for k in DETAILS)))
        case_id = cur.lastrowid
        _audit(conn, case_id, at, who, "recorded", {"image": path, **{k: v for k, v in details.items() if v}})
        return case_id

    def _update_existing(self, conn, case_id: int, path: str, details: dict, at: str, who: str) -> None:
        row = conn.execute("SELECT image_path, patient_id, eye, visit_date FROM cases WHERE id = ?",
                           (case_id,)).fetchone()
        old_path, current = row[0], dict(zip(DETAILS, row[1:]))
        for key, value in details.items():
            if value is not None and current[key] is not None and value != current[key]:
                raise CaseLogError(f"{path} is already case {case_id} with {key.replace('_', ' ')} {current[key]!r}, "
                                   f"not {value!r}; change the case's details instead of recording it again")
        fill = {k: v for k, v in details.items() if v is not None and current[k] is None}
        if fill:
            self._set(conn, case_id, "details", fill, {k: [None, v] for k, v in fill.items()}, at, who)
        if old_path != path:
            self._set(conn, case_id, "moved", {"image_path": path}, {"from": old_path, "to": path}, at, who)

    def _add_answer(self, conn, case_id: int, result: GradeResult, sha: str, at: str, who: str) -> None:
        m = result.model
        cur = conn.execute(
            "INSERT INTO answers (case_id, created_at, model_id, model_name, role, arch, grade, probabilities_json, "
            "confidence, expected_grade, sublabels_predicted_json, sublabels_used_json, image_sha256, device) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (case_id, at, m.model_id, m.name, m.role, m.arch, int(result.grade), json.dumps(list(result.probabilities)),
             float(result.confidence), float(result.expected_grade), to_json(dict(result.sublabels_predicted)),
             to_json(result.sublabels_used), sha, result.device))
        conn.execute("UPDATE cases SET model_grade = ?, model_confidence = ?, model_name = ?, updated_at = ? "
                     "WHERE id = ?", (int(result.grade), float(result.confidence), m.name, at, case_id))
        db.rescore(conn, case_id)
        _audit(conn, case_id, at, who, "answer", {"answer_id": cur.lastrowid, "model": m.name, "role": m.role,
                                                   "grade": int(result.grade)})

    # ---- editing --------------------------------------------------------------------------------
    def set_details(self, case_id: int, *, patient_id: object = _UNSET, eye: object = _UNSET,
                    visit_date: object = _UNSET, user: str | None = None) -> Case:
        """Change the patient ID, eye or visit date (None clears one); the old values stay in the audit trail."""
        given = {"patient_id": patient_id, "eye": eye, "visit_date": visit_date}
        checks = {"patient_id": check_patient_id, "eye": check_eye, "visit_date": check_visit_date}
        new = {k: checks[k](v) for k, v in given.items() if v is not _UNSET}
        with self._guard(write=True) as conn:
            old = self._row(conn, case_id, DETAILS)
            changed = {k: v for k, v in new.items() if old[k] != v}
            if changed:
                self._set(conn, case_id, "details", changed, {k: [old[k], v] for k, v in changed.items()},
                          now_utc(), user or self.user)
        return self.get(case_id)

    def set_sublabels(self, case_id: int, values: Mapping[str, int | None] | None, user: str | None = None) -> Case:
        """The sub-labels the clinician entered (validate them against the model's schema first)."""
        clean = None if values is None else {str(k): (None if v is None else int(v)) for k, v in values.items()}
        with self._guard(write=True) as conn:
            self._row(conn, case_id, ("id",))
            self._set(conn, case_id, "sublabels", {"sublabels_json": to_json(clean)}, {"sublabels": clean},
                      now_utc(), user or self.user)
        return self.get(case_id)

    def set_gate(self, case_id: int, gate: object, user: str | None = None) -> Case:
        """Store the input gate's result for a case; its OOD score then counts in the review order."""
        with self._guard(write=True) as conn:
            self._row(conn, case_id, ("id",))
            self._set(conn, case_id, "gate", {"gate_json": to_json(gate)}, {}, now_utc(), user or self.user)
        return self.get(case_id)

    def _set(self, conn, case_id: int, action: str, columns: dict, detail: dict, at: str, who: str) -> None:
        sets = ", ".join(f"{c} = ?" for c in columns)
        conn.execute(f"UPDATE cases SET {sets}, updated_at = ? WHERE id = ?", (*columns.values(), at, case_id))
        if "gate_json" in columns:
            db.rescore(conn, case_id)
        _audit(conn, case_id, at, who, action, detail)

    @staticmethod
    def _row(conn, case_id: int, columns: tuple[str, ...]) -> dict:
        row = conn.execute(f"SELECT {', '.join(columns)} FROM cases WHERE id = ?", (int(case_id),)).fetchone()
        if row is None:
            raise CaseLogError(f"there is no case {case_id} in this case log")
        return dict(zip(columns, row))

    # ---- reviewing ------------------------------------------------------------------------------
    def agree(self, case_id: int, note: str | None = None, user: str | None = None) -> Case:
        """The clinician agrees with the latest answer: it becomes the final grade."""
        return self._review(case_id, None, note, user)

    def correct(self, case_id: int, grade: int, note: str | None = None, user: str | None = None) -> Case:
        """The clinician's own grade; equal to the latest answer's, it counts as agreeing."""
        return self._review(case_id, check_grade(grade), note, user)

    def _review(self, case_id: int, grade: int | None, note: str | None, user: str | None) -> Case:
        who, at = user or self.user, now_utc()
        with self._guard(write=True) as conn:
            old = self._row(conn, case_id, ("status", "final_grade", "note"))
            answer = conn.execute("SELECT id, grade FROM answers WHERE case_id = ? ORDER BY id DESC LIMIT 1",
                                  (int(case_id),)).fetchone()
            if answer is None:
                raise CaseLogError(f"case {case_id} has no model answer to agree with or correct")
            final = answer[1] if grade is None else grade
            status = AGREED if final == answer[1] else CORRECTED
            conn.execute("UPDATE cases SET status = ?, final_grade = ?, note = ?, reviewed_at = ?, reviewed_by = ?, "
                         "reviewed_answer_id = ?, updated_at = ? WHERE id = ?",
                         (status, final, note if note is not None else old["note"], at, who, answer[0], at, case_id))
            _audit(conn, case_id, at, who, "agree" if grade is None else "correct", {
                "grade": final, "model_grade": answer[1], "answer_id": answer[0], "status": status, "note": note,
                "previous_status": old["status"], "previous_final_grade": old["final_grade"]})
        return self.get(case_id)

    def reopen(self, case_id: int, user: str | None = None) -> Case:
        """Take back a review: the case is open again (the review stays in the audit trail)."""
        at, who = now_utc(), user or self.user
        with self._guard(write=True) as conn:
            old = self._row(conn, case_id, ("status", "final_grade"))
            if old["status"] == OPEN:
                raise CaseLogError(f"case {case_id} is already open")
            conn.execute("UPDATE cases SET status = 'open', final_grade = NULL, reviewed_at = NULL, reviewed_by = NULL, "
                         "reviewed_answer_id = NULL, updated_at = ? WHERE id = ?", (at, case_id))
            _audit(conn, case_id, at, who, "reopen", {"previous_status": old["status"],
                                                      "previous_final_grade": old["final_grade"]})
        return self.get(case_id)

    # ---- reading --------------------------------------------------------------------------------
    def get(self, case_id: int) -> Case:
        """The whole case: its answers and audit trail read in one snapshot."""
        with self._guard() as conn, db.snapshot(conn):
            return queries.load_case(conn, case_id)

    def find_image(self, path: str | Path) -> Case | None:
        """The case of the photograph in this file (by its SHA-256), if it was recorded."""
        sha = hash_image(path)
        with self._guard() as conn, db.snapshot(conn):
            case_id = queries.find_by_image(conn, sha)
            return None if case_id is None else queries.load_case(conn, case_id)

    def list(self, flt: CaseFilter | None = None, sort: str = "id", descending: bool = True,
             limit: int | None = None, offset: int = 0) -> list[CaseSummary]:
        """Cases for the table: filtered, sorted by any of queries.SORT_KEYS, one page at a time."""
        with self._guard() as conn:
            return queries.list_summaries(conn, flt or CaseFilter(), sort, descending, limit, offset)

    def count(self, flt: CaseFilter | None = None) -> int:
        with self._guard() as conn:
            return queries.count(conn, flt or CaseFilter())

    def next_for_review(self, limit: int = 1, skip: tuple[int, ...] = ()) -> list[CaseSummary]:
        """Open cases, most informative first (see engine.cases.review); `skip` leaves out cases already shown."""
        with self._guard() as conn:
            return queries.next_for_review(conn, limit, tuple(skip))

    def reviewed_since(self, since: str | None) -> list[CaseSummary]:
        """Cases agreed or corrected at or after `since` (an ISO date/time; None: every reviewed case), oldest first."""
        return self.list(CaseFilter(status=REVIEWED, reviewed_since=since), sort="reviewed_at", descending=False)

    def check_image(self, case: CaseSummary | Case) -> FileCheck:
        """Whether the case's file is still the photograph that was graded."""
        full = case if isinstance(case, Case) else self.get(case.id)
        return check_file(full.image_path, full.image_sha256)

    def export(self, out: str | Path, **options):
        """Write the reviewed cases as a dataset folder; see engine.cases.export.export_reviewed."""
        from engine.cases.export import export_reviewed

        return export_reviewed(self, out, **options)


def hash_image(path: str | Path) -> str:
    """The SHA-256 that identifies a photograph, or CaseLogError when the file cannot be read."""
    try:
        return sha256_file(path)
    except OSError as e:
        raise CaseLogError(f"the image {path} cannot be read to record it ({e.strerror or e})") from None


def _check_result(result: GradeResult) -> None:
    if result.model is None:
        raise CaseLogError("a grade cannot be recorded without the model that gave it")
    check_grade(int(result.grade))
    if not probabilities_ok(tuple(result.probabilities)):
        raise CaseLogError(f"the answer's probabilities {tuple(result.probabilities)!r} are not {NUM_GRADES} "
                           "finite values")


def _audit(conn, case_id: int, at: str, who: str, action: str, detail: dict) -> None:
    conn.execute("INSERT INTO audit (case_id, at, user, action, detail_json) VALUES (?, ?, ?, ?, ?)",
                 (case_id, at, who, action, json.dumps(detail, sort_keys=True, default=str)))


__all__ = ["CaseLog", "CaseFilter", "current_user", "CORRECTED", "AGREED", "OPEN"]
