"""Plain logic of the retrain panel: the job's settings and command line, log lines, progress and ETA.

No widgets here, so all of it is testable without a window.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TEACHER, KD, SEQUENCE = "teacher", "kd", "teacher+kd"
ROLE_OF_JOB = {"teacher": "teacher", "kd": "student", "student": "student"}


@dataclass(frozen=True)
class TrainSettings:
    """What the panel's form asks for; the defaults are the safe ones a clinic starts with."""

    epochs: int = 20
    image_size: int = 128
    arch: str = "resnet18"
    device: str = "auto"
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    kd_temperature: float = 4.0
    kd_alpha: float = 0.7
    patience: int = 8
    token_layout: str = "grid"
    fusion: str = "concat"  # the teacher's: concat, coattn, mlp (sub-labels only) or none (image only)
    token_kd: float = 0.0  # weights of token and attention-map distillation (0 = off)
    attn_kd: float = 0.0
    extra_teachers: tuple[str, ...] = ()  # more teachers for a kd job: a QWK-weighted ensemble

    def arguments(self, job: str) -> list[str]:
        """The `train` options for `job` (kd options only for kd, fusion and token layout only for a teacher)."""
        args = [
            "--arch", self.arch, "--epochs", str(self.epochs), "--image-size", str(self.image_size),
            "--batch-size", str(self.batch_size), "--lr", repr(float(self.lr)), "--seed", str(self.seed),
            "--patience", str(self.patience), "--device", self.device,
        ]
        if job == "kd":
            args += ["--kd-temperature", repr(float(self.kd_temperature)), "--kd-alpha", repr(float(self.kd_alpha))]
            if self.token_kd > 0:
                args += ["--token-kd", repr(float(self.token_kd))]
            if self.attn_kd > 0:
                args += ["--attn-kd", repr(float(self.attn_kd))]
        if job == "teacher":
            args += ["--fusion", self.fusion, "--token-layout", self.token_layout]
        return args


def project_root() -> Path:
    """The folder holding the engine package (for `python -m engine` in development)."""
    import engine

    return Path(engine.__file__).resolve().parents[1]


def train_command(job: str, dataset: str | Path, out: str | Path, settings: TrainSettings,
                  teacher: str | Path | None = None) -> tuple[str, list[str]]:
    """(program, arguments) of one training child process: the frozen app itself, or python -m engine."""
    args = ["train", job, str(dataset), "--out", str(out), *settings.arguments(job), "--progress", "json"]
    if teacher is not None:
        args += ["--teacher", str(teacher)]
        for extra in settings.extra_teachers:  # multi-teacher distillation
            if str(extra) != str(teacher):
                args += ["--teacher", str(extra)]
    if getattr(sys, "frozen", False):
        return sys.executable, args
    return sys.executable, ["-m", "engine", *args]


def child_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: unbuffered output and, in development, the engine on its import path."""
    env = dict(os.environ if base is None else base)
    env["PYTHONUNBUFFERED"] = "1"
    if not getattr(sys, "frozen", False):
        paths = [str(project_root())] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _pct(value) -> str:
    return f"{value * 100:.1f} %" if isinstance(value, (int, float)) else "-"


def _num(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


def describe(event: dict) -> str | None:
    """One readable log line for a progress event (None for the frequent batch events)."""
    kind = event.get("event")
    if kind == "start":
        resumed = f", resuming at epoch {event['start_epoch']}" if event.get("start_epoch", 1) > 1 else ""
        role, arch = ROLE_OF_JOB.get(event.get("job"), event.get("job")), str(event.get("arch", ""))
        what = f"{arch.removeprefix('teacher_')} fusion teacher" if arch.startswith("teacher_") else role
        if event.get("job") == "kd":
            what = "student, distilled from the teacher,"
        return (f"Training the {what} at "
                f"{event.get('image_size')} px on {event.get('device')}: {event.get('n_train')} training, "
                f"{event.get('n_val')} validation, {event.get('n_test')} test images; {event.get('epochs')} epochs"
                f"{resumed}.")
    if kind == "epoch":
        best = "  (best so far)" if event.get("best_epoch") == event.get("epoch") else ""
        return (f"Epoch {event.get('epoch')}/{event.get('epochs')}: train loss {_num(event.get('train_loss'))}, "
                f"validation loss {_num(event.get('val_loss'))}, accuracy {_pct(event.get('val_acc'))}, "
                f"QWK {_num(event.get('val_qwk'))}, MAE {_num(event.get('val_mae'), 2)} "
                f"({_num(event.get('seconds'), 1)} s, {_num(event.get('images_per_s'), 1)} images/s){best}")
    if kind == "done":
        val = event.get("metrics", {}).get("val", {})
        early = ", stopped early" if event.get("stopped_early") else ""
        return (f"Finished: best epoch {event.get('best_epoch')}{early}; validation accuracy {_pct(val.get('acc'))}, "
                f"QWK {_num(val.get('qwk'))}. Model {event.get('model_id')} saved in {event.get('bundle')}.")
    if kind == "error":
        return f"Error: {event.get('message')}"
    return None


class ProgressClock:
    """Turns batch and epoch events of one job into a fraction done and a time left."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        self.epochs, self.start_epoch = 1, 1
        self.fraction = 0.0
        self._first: tuple[float, float] | None = None  # (time, fraction) where the pace is measured from
        self._last: tuple[float, float] | None = None

    def update(self, event: dict) -> float:
        """Feed one event; returns the fraction of the job done (0-1)."""
        kind = event.get("event")
        if kind == "start":
            self.reset()
            self.epochs, self.start_epoch = max(1, int(event.get("epochs", 1))), int(event.get("start_epoch", 1))
            self._first = (self._clock(), 0.0)  # the data and model are ready: training starts now
            return self.fraction
        if kind == "batch":
            within = event["step"] / max(1, event["steps"])
            done = event["epoch"] - 1 + within
        elif kind == "epoch":
            done = float(event["epoch"])
        elif kind == "done":
            self.fraction = 1.0
            return self.fraction
        else:
            return self.fraction
        span = max(1, self.epochs - self.start_epoch + 1)
        self.fraction = min(1.0, max(0.0, (done - (self.start_epoch - 1)) / span))
        now = self._clock()
        if self._first is None:
            self._first = (now, self.fraction)
        self._last = (now, self.fraction)
        return self.fraction

    def seconds_left(self) -> float | None:
        """Time left at the pace since training started; None until there is a pace."""
        if self._first is None or self._last is None:
            return None
        (t0, f0), (t1, f1) = self._first, self._last
        if f1 <= f0 or t1 <= t0:
            return None
        return (t1 - t0) / (f1 - f0) * (1.0 - f1)


def format_duration(seconds: float | None) -> str:
    """'about 3 min', 'about 40 s' or 'estimating' for a time left."""
    if seconds is None:
        return "estimating time left\u2026"
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min left"
    return f"about {seconds / 3600:.1f} h left"
