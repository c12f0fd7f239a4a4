"""The case log: every graded image kept as a case, reviewed by the clinician, exported for retraining.

    with CaseLog.open() as log:                      # or CaseLog.open(path); notices in log.notices
        case = log.record(result, patient_id="P1", eye="OD", visit_date="2026-05-01")
        log.agree(case.id)                           # or log.correct(case.id, 4, note="...")
        page = log.list(CaseFilter(status=("open",)), sort="priority", limit=100)
        nxt = log.next_for_review()
        log.export("new-data")                       # reviewed cases as a dataset folder

db (file, pragmas, migrations), model (frozen dataclasses), queries (filters, paging),
review (the review-order formula), export (the dataset folder), log (CaseLog itself).
"""

from engine.cases.db import DB_ENV, SCHEMA_VERSION, default_db_path
from engine.cases.export import LINK_MODES, ExportResult, active_model_trained_at, export_reviewed
from engine.cases.log import CaseLog, current_user
from engine.cases.model import (
    AGREED,
    CORRECTED,
    EYES,
    OPEN,
    STATUSES,
    Answer,
    AuditEntry,
    Case,
    CaseLogError,
    CaseSummary,
    FileCheck,
)
from engine.cases.queries import SORT_KEYS, CaseFilter
from engine.cases.review import ReviewScore, score

__all__ = [
    "AGREED", "CORRECTED", "DB_ENV", "EYES", "LINK_MODES", "OPEN", "SCHEMA_VERSION", "SORT_KEYS", "STATUSES",
    "Answer", "AuditEntry", "Case", "CaseFilter", "CaseLog", "CaseLogError", "CaseSummary", "ExportResult",
    "FileCheck", "ReviewScore", "active_model_trained_at", "current_user", "default_db_path", "export_reviewed", "score",
]
