"""Builders for the case-log tests: tiny image files and GradeResults without a model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine.results import GradeResult, ModelInfo

STUDENT = ModelInfo(name="stu", model_id="s" * 16, role="student", arch="resnet18")
TEACHER = ModelInfo(name="tea", model_id="t" * 16, role="teacher", arch="teacher_concat")


def write_image(path: Path, seed: int = 0, size: int = 16) -> Path:
    """A small PNG whose bytes differ by seed (so each is its own photograph)."""
    rng = np.random.default_rng(seed)
    assert cv2.imwrite(str(path), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return path


def peaked(grade: int, mass: float = 0.9) -> tuple[float, ...]:
    rest = (1.0 - mass) / 7
    return tuple(mass if k == grade else rest for k in range(8))


def result(source: Path | str | None, grade: int = 2, probs: tuple[float, ...] | None = None,
           model: ModelInfo = STUDENT, sublabels_used: dict | None = None) -> GradeResult:
    p = np.array(probs if probs is not None else peaked(grade))
    return GradeResult(
        grade=int(p.argmax()) if probs is not None else grade, probabilities=tuple(float(v) for v in p),
        confidence=float(p.max()), expected_grade=float((p * np.arange(8)).sum()),
        sublabels_predicted={"central_involvement": 1}, sublabels_used=sublabels_used, model=model,
        source=None if source is None else str(source),
    )
