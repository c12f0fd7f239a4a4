"""What one report page shows: a `ReportItem`, plain data gathered before anything is drawn."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from engine.cases import Answer, Case, FileCheck, PatientHistory
from engine.results import GradeResult


@dataclass(frozen=True)
class ReportItem:
    """One page: the case (or an image graded for the report only), its answers, picture and history.

    `answers` are the case's stored answers, or, for an image not in the case log, the answers
    given for this report (`answer_of`). `heat` is the result whose `cam` the page draws
    (re-graded for the report, or passed in by the app); `notices` maps model ids to their
    card's notice (None: the card has none) for the models that are known here.
    """

    source: str  # the image file
    image: np.ndarray | None = field(default=None, repr=False, compare=False)  # RGB; None: cannot be read
    heat: GradeResult | None = field(default=None, repr=False, compare=False)
    case: Case | None = None  # None: not in the case log
    answers: tuple[Answer, ...] = ()
    details: Mapping[str, str | None] = field(default_factory=dict)  # patient_id, eye, visit_date (no case)
    history: PatientHistory | None = None
    notices: Mapping[str, str | None] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # sentences printed on the page (a moved or changed file, ...)
    file_check: FileCheck | None = None

    @property
    def patient_id(self) -> str | None:
        return self.case.patient_id if self.case else self.details.get("patient_id")

    @property
    def eye(self) -> str | None:
        return self.case.eye if self.case else self.details.get("eye")

    @property
    def visit_date(self) -> str | None:
        return self.case.visit_date if self.case else self.details.get("visit_date")

    def latest(self, role: str | None = None) -> Answer | None:
        """The latest answer (of `role`, when given)."""
        chosen = [a for a in self.answers if role is None or a.role == role]
        return chosen[-1] if chosen else None


def answer_of(result: GradeResult, sha256: str = "", created_at: str = "") -> Answer:
    """A fresh GradeResult as an Answer (id 0: not stored), so every page draws from the same record."""
    m = result.model
    return Answer(
        id=0, case_id=0, created_at=created_at, model_id=m.model_id if m else "", model_name=m.name if m else "",
        role=m.role if m else "student", arch=m.arch if m else "", grade=int(result.grade),
        probabilities=tuple(result.probabilities), confidence=float(result.confidence),
        expected_grade=float(result.expected_grade), sublabels_predicted=dict(result.sublabels_predicted),
        sublabels_used=None if result.sublabels_used is None else dict(result.sublabels_used), image_sha256=sha256,
        device=result.device,
    )
