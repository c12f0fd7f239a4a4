"""What the app asks of the case log, as plain functions of an open CaseLog (no Qt): run on a lane's thread.

Recording skips an answer the case already holds (the same model, the same bytes, the same
sub-labels): a new heat-map target or opening the image again grades it again, but adds
nothing the log does not know; only a changed input-gate dict (the clinician moved the lens
circle, or chose to grade anyway) is stored then. A DICOM's new case takes the patient ID, eye
and visit date from the file (the clinician edits them in the review box); details the log
refuses are left blank.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.cases import Case, CaseLog, CaseLogError, FileCheck
from engine.cases.log import hash_image
from engine.results import GradeResult


def lookup(log: CaseLog, path: str) -> tuple[str, Case | None]:
    """(SHA-256 of the file, its case or None)."""
    sha = hash_image(path)
    return sha, log.find_hash(sha)


def is_repeat(case: Case, result: GradeResult, sha: str) -> bool:
    """The case already holds this model's answer to these bytes with these sub-labels."""
    m = result.model
    return m is not None and any(
        a.model_id == m.model_id and a.role == m.role and a.image_sha256 == sha
        and a.sublabels_used == result.sublabels_used for a in case.answers)


def record_answer(log: CaseLog, path: str, result: GradeResult, sha: str | None,
                  sublabels: Mapping[str, int | None] | None, gate: Mapping[str, Any] | None = None) -> Case:
    """The file's case with this answer on it (a new case, one more answer, or as it was when it is a repeat).

    gate: the input gate's dict to store (default: the result's own, graded_anyway False).
    """
    sha = sha or hash_image(path)
    case = log.find_hash(sha)
    if case is not None and is_repeat(case, result, sha):
        if sublabels is not None and case.sublabels != dict(sublabels):
            case = log.set_sublabels(case.id, sublabels)
        if gate is not None and case.gate != dict(gate):
            case = log.set_gate(case.id, dict(gate))
        return case
    details = _file_details(path) if case is None else {}
    given = None if gate is None else dict(gate)
    try:
        return log.record(result, path, sublabels=sublabels, image_sha256=sha, gate=given, **details)
    except CaseLogError:
        if not any(details.values()):
            raise
        return log.record(result, path, sublabels=sublabels, image_sha256=sha, gate=given)  # details refused: none


def _file_details(path: str) -> dict[str, str | None]:
    """A DICOM's patient ID, eye and visit date for its new case (engine.dicom.case_details); none for other files."""
    from engine.dicom import case_details

    return case_details(path, {})[0]


def review(log: CaseLog, case_id: int, grade: int | None, note: str | None) -> Case:
    return log.agree(case_id, note=note) if grade is None else log.correct(case_id, grade, note=note)


def load(log: CaseLog, case_id: int) -> tuple[Case, FileCheck]:
    """A case and whether its file is still the photograph that was graded (hashes the file)."""
    case = log.get(case_id)
    return case, log.check_image(case)


def next_case(log: CaseLog, skip: tuple[int, ...]) -> tuple[Case, FileCheck] | None:
    """The most informative open case not in `skip`, with its file check; None when there is none."""
    rows = log.next_for_review(limit=1, skip=skip)
    return load(log, rows[0].id) if rows else None
