"""Gather what each report page shows: the case, its file, a heat map (re-graded: the log keeps none), the history."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine.cases import Case, CaseLog
from engine.errors import EngineError
from engine.io import ImageReadError, read_image
from engine.report.item import ReportItem, answer_of

if TYPE_CHECKING:
    import numpy as np

    from engine.infer import Grader
    from engine.results import GradeResult


class ReportError(EngineError):
    """A report that cannot be made (nothing to report, no model to grade an image with, a PDF not written)."""


def model_notices(grader: Grader | None = None, store_root: str | Path | None = None) -> dict[str, str | None]:
    """model id -> its card's notice, for every model known here (the model store's runs, the defaults, `grader`'s)."""
    from engine.model_store import ModelStore, default_store_root

    out = {card.model_id: card.notice for _p, card in ModelStore(store_root or default_store_root()).list_bundles()}
    if grader is not None:
        for card in (grader.student_card, grader.teacher_card):
            if card is not None:
                out[card.model_id] = card.notice
    return out


def report_items(targets: Sequence[int | str | Path], *, log: CaseLog | None = None, grader: Grader | None = None,
                 cam_target: object = "severity", cam_method: str = "gradcam",
                 notices: Mapping[str, str | None] | None = None) -> list[ReportItem]:
    """One item per target: a case id, or an image file (its case when the log holds it, else graded here only).

    With a grader, each page's heat map is drawn by re-grading the photograph (the case log stores
    no heat maps); an image not in the log is graded by it and not recorded.
    """
    known = dict(notices) if notices is not None else model_notices(grader)
    items = []
    for target in targets:
        case = _case_of(target, log)
        if case is not None:
            items.append(case_item(case, log, grader, cam_target, cam_method, known))
        else:
            items.append(image_item(str(target), grader, log, cam_target, cam_method, known))
    if not items:
        raise ReportError("nothing to report: give case ids or image files")
    return items


def _case_of(target: int | str | Path, log: CaseLog | None) -> Case | None:
    if isinstance(target, int):
        if log is None:
            raise ReportError(f"case {target} needs the case log to be read")
        return log.get(target)
    if log is None or not Path(target).is_file():
        return None
    return log.find_image(target)


def case_item(case: Case, log: CaseLog, grader: Grader | None, cam_target: object, cam_method: str,
              notices: Mapping[str, str | None], heat: GradeResult | None = None) -> ReportItem:
    """The page of a recorded case; `heat` (a result with a heat map, e.g. the app's) spares the re-grade."""
    check = log.check_image(case)
    warnings = [] if check.ok else [check.message]
    image = None
    if check.state in ("ok", "changed"):
        try:
            image = read_image(case.image_path)
        except ImageReadError as e:
            warnings.append(str(e))
    if heat is None and image is not None and grader is not None:
        heat = _regrade(grader, image, cam_target, cam_method)
    warnings += _model_mismatch(heat, case.answers)
    history = log.history(case.patient_id) if case.patient_id else None
    return ReportItem(source=case.image_path, image=image, heat=heat, case=case, answers=case.answers,
                      history=history, notices=notices, warnings=tuple(warnings), file_check=check)


def image_item(path: str, grader: Grader | None, log: CaseLog | None, cam_target: object, cam_method: str,
               notices: Mapping[str, str | None]) -> ReportItem:
    """The page of an image that is not in the case log: graded for this report only (not recorded)."""
    from engine.cases.log import hash_image
    from engine.dicom import case_details

    if grader is None:
        raise ReportError(f"{path} is not in the case log, and grading it needs a model")
    image = read_image(path)  # an unreadable file is refused with its sentence
    heat = _regrade(grader, image, cam_target, cam_method)
    details, notes = case_details(path, {})
    history = log.history(details["patient_id"]) if log is not None and details["patient_id"] else None
    answer = answer_of(heat, sha256=hash_image(path))
    warnings = ("not in the case log: graded for this report only, not recorded", *notes)
    return ReportItem(source=str(Path(path).resolve()), image=image, heat=heat, answers=(answer,), details=details,
                      history=history, notices=notices, warnings=warnings)


def _regrade(grader: Grader, image: np.ndarray, cam_target: object, cam_method: str) -> GradeResult:
    return grader.grade(image, grader.request(cam=True, target=cam_target, cam_method=cam_method))


def _model_mismatch(heat: GradeResult | None, answers: Iterable) -> list[str]:
    """A sentence when the heat map comes from another student than the answers on the page."""
    students = [a for a in answers if a.role == "student"]
    if heat is None or heat.model is None or not students or students[-1].model_id == heat.model.model_id:
        return []
    a = students[-1]
    return [f"the heat map is drawn by {heat.model.name} ({heat.model.model_id[:8]}), not by {a.model_name} "
            f"({a.model_id[:8]}), the student whose answer is shown"]
