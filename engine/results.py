"""Plain data that crosses the engine's boundary: no tensors, no models."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.inputs import InputCheck

# The input gate's columns of a result's CSV row, after model_id.
GATE_CSV_COLUMNS = ("input_ok", "input_problems", "lens_cx", "lens_cy", "lens_r", "lens_source", "ood_score")
PROBLEM_SEPARATOR = " | "  # between the sentences of the input_problems column


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
    heat map in [0, 1] at the input image's resolution, zero outside the lens, or None
    when not asked for. `input` is the input gate's answer: a photograph with problems is
    still graded (so a clinician may grade it anyway), with `input_ok` False.
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
    input: InputCheck | None = None  # the input gate's checks and the lens the model used

    @property
    def input_ok(self) -> bool | None:
        """True when the photograph passed the input gate, False when it has problems, None when not checked."""
        return None if self.input is None else self.input.ok

    @property
    def input_problems(self) -> list[str]:
        """The input gate's problems, one sentence each."""
        return [] if self.input is None else self.input.reasons

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
        row.update(self.gate_columns())
        row["error"] = ""
        return row

    def gate_columns(self) -> dict[str, object]:
        """The GATE_CSV_COLUMNS of this result ("" where there is nothing to say)."""
        check, ok = self.input, self.input_ok
        c = check.circle if check else None
        return {
            "input_ok": "" if ok is None else str(ok).lower(),
            "input_problems": PROBLEM_SEPARATOR.join(self.input_problems),
            "lens_cx": "" if c is None else round(float(c.cx), 1),
            "lens_cy": "" if c is None else round(float(c.cy), 1),
            "lens_r": "" if c is None else round(float(c.r), 1),
            "lens_source": (check.source or "") if check else "",
            "ood_score": "" if check is None or check.ood_score is None else round(check.ood_score, 2),
        }
