"""Reading cases: filters, sorting and paging for the case table, and rows -> dataclasses.

Every list query reads only the `cases` table (the latest answer's grade is kept on the case),
so listing and filtering 100,000 cases stays an index walk or one table scan.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from engine.cases.model import (
    REVIEWED,
    STATUSES,
    Answer,
    AuditEntry,
    Case,
    CaseLogError,
    CaseSummary,
    check_eye,
    from_json,
    normalise_time,
)

SUMMARY_COLUMNS = ("id", "created_at", "image_path", "patient_id", "eye", "visit_date", "model_grade",
                   "model_confidence", "model_name", "final_grade", "status", "priority", "reviewed_at")
CASE_COLUMNS = ("updated_at", "image_sha256", "gate_json", "sublabels_json", "note", "reviewed_by",
                "reviewed_answer_id", "uncertainty", "disagreement", "ood")
SORT_KEYS = ("id", "created_at", "patient_id", "eye", "visit_date", "model_grade", "model_confidence",
             "final_grade", "status", "priority", "reviewed_at", "image_path")
_SUMMARY_SQL = ", ".join(SUMMARY_COLUMNS)


@dataclass(frozen=True)
class CaseFilter:
    """Which cases to list; every field left at its default matches all of them."""

    status: tuple[str, ...] = ()  # any of open / agreed / corrected; "reviewed" means agreed or corrected
    patient_id: str | None = None  # exact match
    eye: str | None = None
    search: str | None = None  # case-insensitive substring of the image path, patient ID or note
    disagreements: bool = False  # corrected by the clinician, or two models gave different grades
    reviewed_since: str | None = None  # ISO date/time: reviewed at or after it

    def where(self) -> tuple[str, list[object]]:
        """The SQL WHERE clause (or '') and its parameters."""
        parts: list[str] = []
        params: list[object] = []
        statuses = _statuses(self.status)
        if statuses:
            parts.append(f"status IN ({', '.join('?' * len(statuses))})")
            params += statuses
        if self.patient_id is not None:
            parts.append("patient_id = ?")
            params.append(self.patient_id.strip())
        if self.eye is not None:
            parts.append("eye = ?")
            params.append(check_eye(self.eye))
        if self.search:
            like = "%" + self.search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            # the ids come from a scan of the narrow covering index cases_for_search, not of the table
            parts.append("id IN (SELECT id FROM cases WHERE image_path LIKE ? ESCAPE '\\' OR patient_id LIKE ? "
                         "ESCAPE '\\' OR note LIKE ? ESCAPE '\\')")
            params += [like, like, like]
        if self.disagreements:
            parts.append("(status = 'corrected' OR models_disagree = 1)")
        if self.reviewed_since is not None:
            parts.append("reviewed_at >= ?")
            params.append(normalise_time(self.reviewed_since))
        return (" WHERE " + " AND ".join(parts)) if parts else "", params


def _statuses(given: tuple[str, ...] | str) -> list[str]:
    items = [given] if isinstance(given, str) else list(given)
    out: list[str] = []
    for s in (x.strip().lower() for x in items):
        if s == "reviewed":
            out += REVIEWED
        elif s == "unreviewed":
            out.append("open")
        elif s in STATUSES:
            out.append(s)
        else:
            raise CaseLogError(f"status {s!r} is not one of {', '.join(STATUSES)}, reviewed or unreviewed")
    return sorted(set(out))


def list_summaries(conn: sqlite3.Connection, flt: CaseFilter, sort: str = "id", descending: bool = True,
                   limit: int | None = None, offset: int = 0) -> list[CaseSummary]:
    """One page of the case table (all matching cases when `limit` is None)."""
    if sort not in SORT_KEYS:
        raise CaseLogError(f"cannot sort by {sort!r}; choose one of {', '.join(SORT_KEYS)}")
    where, params = flt.where()
    direction = "DESC" if descending else "ASC"
    tie = "" if sort == "id" else f", id {direction}"
    sql = f"SELECT {_SUMMARY_SQL} FROM cases{where} ORDER BY {sort} {direction}{tie}"
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params = [*params, int(limit), int(offset)]
    make = CaseSummary
    return [make(*row) for row in conn.execute(sql, params)]


def count(conn: sqlite3.Connection, flt: CaseFilter) -> int:
    where, params = flt.where()
    return conn.execute(f"SELECT count(*) FROM cases{where}", params).fetchone()[0]


def next_for_review(conn: sqlite3.Connection, limit: int = 1, skip: tuple[int, ...] = ()) -> list[CaseSummary]:
    """Open cases by descending priority (older first on ties), leaving out the ids in `skip`."""
    holes = f" AND id NOT IN ({', '.join('?' * len(skip))})" if skip else ""
    sql = (f"SELECT {_SUMMARY_SQL} FROM cases WHERE status = 'open'{holes} "
           "ORDER BY priority DESC, id ASC LIMIT ?")
    return [CaseSummary(*row) for row in conn.execute(sql, [*skip, int(limit)])]


def load_case(conn: sqlite3.Connection, case_id: int) -> Case:
    """The whole case with its answers and audit trail, or CaseLogError when there is no such case."""
    cols = ", ".join((*SUMMARY_COLUMNS, *CASE_COLUMNS))
    row = conn.execute(f"SELECT {cols} FROM cases WHERE id = ?", (int(case_id),)).fetchone()
    if row is None:
        raise CaseLogError(f"there is no case {case_id} in this case log")
    summary, rest = row[: len(SUMMARY_COLUMNS)], dict(zip(CASE_COLUMNS, row[len(SUMMARY_COLUMNS):]))
    answers = tuple(_answer(r) for r in conn.execute(
        "SELECT id, case_id, created_at, model_id, model_name, role, arch, grade, probabilities_json, confidence, "
        "expected_grade, sublabels_predicted_json, sublabels_used_json, image_sha256, device "
        "FROM answers WHERE case_id = ? ORDER BY id", (int(case_id),)))
    audit = tuple(AuditEntry(i, c, at, u, a, from_json(d) or {}) for i, c, at, u, a, d in conn.execute(
        "SELECT id, case_id, at, user, action, detail_json FROM audit WHERE case_id = ? ORDER BY id", (int(case_id),)))
    return Case(
        *summary, updated_at=rest["updated_at"], image_sha256=rest["image_sha256"], gate=from_json(rest["gate_json"]),
        sublabels=from_json(rest["sublabels_json"]), note=rest["note"], reviewed_by=rest["reviewed_by"],
        reviewed_answer_id=rest["reviewed_answer_id"], uncertainty=rest["uncertainty"],
        disagreement=rest["disagreement"], ood=rest["ood"], answers=answers, audit=audit,
    )


def _answer(row: tuple) -> Answer:
    (aid, case_id, at, model_id, name, role, arch, grade, probs, conf, expected, pred, used, sha, device) = row
    return Answer(aid, case_id, at, model_id, name, role, arch, grade, tuple(from_json(probs)), conf, expected,
                  from_json(pred) or {}, from_json(used), sha, device)


def find_by_image(conn: sqlite3.Connection, sha256: str) -> int | None:
    """The newest case of the photograph with this SHA-256, if any."""
    row = conn.execute("SELECT id FROM cases WHERE image_sha256 = ? ORDER BY id DESC LIMIT 1", (sha256,)).fetchone()
    return None if row is None else row[0]
