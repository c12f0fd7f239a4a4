"""Which model bundles the window grades with, and what it knows of them once they are loaded (no Qt here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LoadOptions:
    """Which bundles to load and where: the command line's --model/--teacher/--device."""

    student: str | None = None
    teacher: str | None = None
    device: str = "auto"


@dataclass(frozen=True)
class ModelSummary:
    """What the window needs to know about the loaded models; no tensors, no modules."""

    schema: Any
    student_card: Any
    teacher_card: Any
    has_teacher: bool
    device: str
    colormaps: tuple[str, ...]
    load_ms: float = 0.0


def build_grader(options: LoadOptions) -> tuple[Any, ModelSummary]:
    """Import the heavy stack and load the models; runs in the worker thread."""
    import time

    t0 = time.perf_counter()
    import engine.compat  # noqa: F401  (before timm)

    # isort: split
    from engine.infer import Grader
    from engine.overlay import COLORMAPS

    grader = Grader(student=options.student, teacher=options.teacher, device=options.device)
    summary = ModelSummary(
        schema=grader.schema,
        student_card=grader.student_card,
        teacher_card=grader.teacher_card,
        has_teacher=bool(grader.has_teacher),
        device=str(grader.device),
        colormaps=tuple(COLORMAPS),
        load_ms=(time.perf_counter() - t0) * 1000,
    )
    return grader, summary
