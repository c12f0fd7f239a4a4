"""Plain data that crosses the engine's boundary: no tensors, no models."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    """Which model answered: enough for a status bar, a CSV row and a report."""

    name: str
    model_id: str
    role: str  # "student" | "teacher"
    arch: str
    notice: str | None = None  # e.g. the demo-model disclaimer

    @property
    def is_demo(self) -> bool:
        return bool(self.notice)


@dataclass(frozen=True)
class GradeResult:
    """One graded image.

    `probabilities` are calibrated (the card's temperature); `cam` is a float32
    heat map in [0, 1] at the input image's resolution, or None when not asked for.
    """

    grade: int
    probabilities: tuple[float, ...]  # 8 values, sum 1
    confidence: float  # probability of `grade`
    expected_grade: float  # sum_k k * p_k
    sublabels_predicted: dict[str, int] = field(default_factory=dict)  # student's auxiliary head
    sublabels_used: dict[str, int | None] | None = None  # the form's values when the teacher answered
    cam: np.ndarray | None = field(default=None, compare=False, repr=False)
    cam_target: int | str | None = None  # the grade the heat map explains, or "severity" (expected grade)
    model: ModelInfo | None = None
    device: str = "cpu"
    timings_ms: dict[str, float] = field(default_factory=dict)
    source: str | None = None  # file path, when graded from a file

    def csv_row(self, schema_names: tuple[str, ...]) -> dict[str, object]:
        """The CLI's and the GUI's CSV export share this row."""
        row: dict[str, object] = {
            "file": self.source or "",
            "grade": self.grade,
            "confidence": round(self.confidence, 4),
            **{f"p{k}": round(p, 4) for k, p in enumerate(self.probabilities)},
        }
        for name in schema_names:
            row[f"pred_{name}"] = self.sublabels_predicted.get(name, "")
        row["model_id"] = self.model.model_id if self.model else ""
        row["error"] = ""
        return row
