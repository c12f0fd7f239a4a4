"""Review order: open cases first where a clinician's answer would teach the model most.

    priority = U + D + O                      (each term in [0, 1], so priority in [0, 3])

U, uncertainty: the normalised entropy H(p) / ln K of the calibrated probabilities of the
   latest student answer (the latest answer of any role when no student answered). 0 for a
   one-hot answer, 1 for a uniform one over the K = 8 grades.
D, disagreement: over the latest answer of every distinct model on the case (student and
   teacher, or an older and a newer student), the largest gap between two expected grades,
   min(1, |E_a - E_b| / 2): models two grades apart disagree fully. 0 with one model.
O, distance from the training set: the input gate's out-of-distribution score s, as
   s / (s + t) with t the gate's own threshold (1 when it gives none), so O = 0.5 at the
   threshold and tends to 1 far beyond it. 0 while the gate gives no score.

A term that cannot be computed counts 0; ties go to the older case. The weights are equal on
purpose: nothing here was tuned, and each term is already on the same 0-1 scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

OOD_SCORE_KEY = "ood_score"  # in the gate's result dict
OOD_THRESHOLD_KEY = "ood_threshold"
FULL_DISAGREEMENT_GRADES = 2.0


@dataclass(frozen=True)
class ReviewScore:
    priority: float
    uncertainty: float
    disagreement: float
    ood: float
    models_disagree: bool  # the latest answers of two models give different grades


@dataclass(frozen=True)
class _Answer:
    model_id: str
    role: str
    grade: int
    probabilities: tuple[float, ...]


def normalised_entropy(probs: Iterable[float]) -> float:
    p = [float(v) for v in probs]
    total = sum(p)
    if len(p) < 2 or not total > 0:
        return 0.0
    h = -sum((v / total) * math.log(v / total) for v in p if v > 0)
    return min(1.0, max(0.0, h / math.log(len(p))))


def expected_grade(probs: Iterable[float]) -> float:
    p = [float(v) for v in probs]
    total = sum(p) or 1.0
    return sum(k * v for k, v in enumerate(p)) / total


def ood_term(gate: Mapping | None) -> float:
    """O from the gate's result, 0 when it carries no usable score."""
    if not isinstance(gate, Mapping):
        return 0.0
    s, t = gate.get(OOD_SCORE_KEY), gate.get(OOD_THRESHOLD_KEY, 1.0)
    if not _finite(s) or s <= 0:
        return 0.0
    t = float(t) if _finite(t) and t > 0 else 1.0
    return float(s) / (float(s) + t)


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def score(answers: Iterable[tuple[str, str, int, tuple[float, ...]]], gate: Mapping | None) -> ReviewScore:
    """The review terms from a case's answers, oldest first, as (model_id, role, grade, probabilities)."""
    items = [_Answer(*a) for a in answers]
    latest: dict[str, _Answer] = {}
    for a in items:
        latest.pop(a.model_id, None)
        latest[a.model_id] = a  # re-inserted so the dict keeps the order of each model's latest answer
    students = [a for a in items if a.role == "student"]
    basis = students[-1] if students else (items[-1] if items else None)
    u = normalised_entropy(basis.probabilities) if basis else 0.0
    means = [expected_grade(a.probabilities) for a in latest.values()]
    d = min(1.0, (max(means) - min(means)) / FULL_DISAGREEMENT_GRADES) if len(means) > 1 else 0.0
    o = ood_term(gate)
    grades = {a.grade for a in latest.values()}
    return ReviewScore(priority=u + d + o, uncertainty=u, disagreement=d, ood=o, models_disagree=len(grades) > 1)
