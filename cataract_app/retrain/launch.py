"""What a retrain step runs: the jobs a user can ask for, and the `train` command line of each child process.

The command line comes from the engine's TrainConfig (engine.train_config.to_arguments),
so the panel and `cataract-grade train` cannot drift apart. No widgets here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cataract_app.launcher import engine_command
from engine.train_config import TrainConfig, to_arguments

TEACHER, KD, SEQUENCE = "teacher", "kd", "teacher+kd"  # what the panel offers; SEQUENCE is two jobs in a row
ROLE_OF_JOB = {"teacher": "teacher", "kd": "student", "student": "student"}


def job_config(job: str, dataset: str | Path, out: str | Path, settings: TrainConfig,
               teacher: str | Path | None = None) -> TrainConfig:
    """The form's settings as one job's config: its job, data and run folder, and its teachers (kd only)."""
    teachers = [str(t) for t in ([teacher, *settings.extra_teachers] if teacher is not None else [])]
    unique = list(dict.fromkeys(teachers))  # the main teacher first, no teacher twice
    return replace(settings, job=job, dataset=str(dataset), out=str(out), teacher=unique[0] if unique else None,
                   extra_teachers=unique[1:])


def train_command(job: str, dataset: str | Path, out: str | Path, settings: TrainConfig,
                  teacher: str | Path | None = None) -> tuple[str, list[str]]:
    """(program, arguments) of one training child process: the frozen app itself, or python -m engine."""
    cfg = job_config(job, dataset, out, settings, teacher)
    program, *args = engine_command(["train", *to_arguments(cfg), "--progress", "json"])
    return program, args
