"""What the caller asks of the grader: one frozen `GradeRequest`, validated once when built.

Who answers (the student, or with sub-labels the fusion teacher), whether a heat map is
drawn, what it explains (a `CamTarget`) and how it is weighed (a CAM method). The CLI and
the GUI both build one; `Grader.grade(image, request)` serves it. Every field has a
default, so a later need (a manual lens circle and a skip-the-checks flag for the input
gate, the case a grade is recorded in) is one more field, not one more argument.

CAM targets are small callables as in pytorch-grad-cam: given the head's logits for a
batch, a target returns the scalar whose gradient the heat map shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar

from engine.choices import CAM_METHODS, STUDENT, TEACHER
from engine.errors import EngineError
from engine.schema import GRADES, Schema

if TYPE_CHECKING:
    from torch import Tensor


class GraderError(EngineError):
    """A request the grader cannot serve (no teacher loaded, bad image array, unknown CAM method, ...)."""


class CamTarget:
    """What a heat map explains; `key` is how settings and the command line name it."""

    key: ClassVar[str] = ""

    def __call__(self, logits: Tensor, temperature: float = 1.0) -> Tensor:
        """The scalar to differentiate: the sum over the batch's rows (rows are independent in eval mode)."""
        raise NotImplementedError

    def explained(self, logits: Tensor) -> list[int | str]:
        """Per row, what its map explains: a grade, or "severity" (GradeResult.cam_target)."""
        raise NotImplementedError


@dataclass(frozen=True)
class PredictedGrade(CamTarget):
    """The logit of each image's own predicted grade."""

    key: ClassVar[str] = "predicted"

    def __call__(self, logits: Tensor, temperature: float = 1.0) -> Tensor:
        return logits.gather(1, logits.argmax(1, keepdim=True)).sum()

    def explained(self, logits: Tensor) -> list[int | str]:
        return [int(g) for g in logits.argmax(1)]


@dataclass(frozen=True)
class Grade(CamTarget):
    """The logit of one given grade, for every image (what speaks for grade k)."""

    grade: int

    def __post_init__(self) -> None:
        if isinstance(self.grade, bool) or not isinstance(self.grade, int) or self.grade not in GRADES:
            raise GraderError(f"the heat map's target must be a grade {GRADES[0]}-{GRADES[-1]}, 'severity' or None, "
                              f"not {self.grade!r}")

    @property
    def key(self) -> str:  # type: ignore[override]
        return str(self.grade)

    def __call__(self, logits: Tensor, temperature: float = 1.0) -> Tensor:
        return logits[:, self.grade].sum()

    def explained(self, logits: Tensor) -> list[int | str]:
        return [self.grade] * logits.shape[0]


@dataclass(frozen=True)
class Severity(CamTarget):
    """The expected grade sum_k k p_k (calibrated): what raises the grade anywhere, whatever the predicted class."""

    key: ClassVar[str] = "severity"

    def __call__(self, logits: Tensor, temperature: float = 1.0) -> Tensor:
        import torch

        grades = torch.arange(logits.shape[1], device=logits.device, dtype=logits.dtype)
        return (torch.softmax(logits / temperature, 1) * grades).sum()

    def explained(self, logits: Tensor) -> list[int | str]:
        return [self.key] * logits.shape[0]


PREDICTED, SEVERITY = PredictedGrade(), Severity()
TARGET_KEYS = (PREDICTED.key, SEVERITY.key, *(str(g) for g in GRADES))


def cam_target(value: object) -> CamTarget:
    """A CamTarget from itself, a key ("predicted", "severity", "0"-"7"), a grade 0-7, or None (predicted)."""
    if isinstance(value, CamTarget):
        return value
    if value is None or value == PREDICTED.key:
        return PREDICTED
    if value == SEVERITY.key:
        return SEVERITY
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if hasattr(value, "__index__") and not isinstance(value, (bool, float)):  # numpy integers too
        return Grade(int(value))
    return Grade(value)  # type: ignore[arg-type]  (refused with the sentence above)


@dataclass(frozen=True, kw_only=True)
class GradeRequest:
    """How to grade: who answers, and whether and how the heat map is drawn. Validated once, here."""

    sublabels: Mapping[str, int | None] | None = None  # None: the student; else the fusion teacher (partial is fine)
    cam: bool = True
    target: CamTarget = PREDICTED  # a CamTarget, or anything cam_target() reads
    cam_method: str = "gradcam"
    schema: Schema | None = field(default=None, repr=False, compare=False)  # what the sub-labels were checked against

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", cam_target(self.target))
        if self.cam_method not in CAM_METHODS:
            raise GraderError(f"unknown CAM method {self.cam_method!r}; choose one of {', '.join(CAM_METHODS)}")
        if self.sublabels is not None:
            if self.schema is None:
                raise GraderError("sub-labels are checked against a schema: build the request with schema= "
                                  "(Grader.request does)")
            object.__setattr__(self, "sublabels", self.schema.validate(self.sublabels))

    @property
    def role(self) -> str:
        """Which model answers: "teacher" with sub-labels, else "student"."""
        return STUDENT if self.sublabels is None else TEACHER

    def explaining(self, target: object) -> GradeRequest:
        """The same request with the heat map explaining `target` instead."""
        return replace(self, target=cam_target(target))


