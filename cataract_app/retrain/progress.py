"""What a training job's events mean to a person: log lines, the fraction done and the time left.

The events are engine.progress's typed events, read from the child's JSON lines. No widgets
here, so all of it is testable without a window.
"""

from __future__ import annotations

import time

from cataract_app.retrain.launch import ROLE_OF_JOB
from engine.progress import BatchEvent, DoneEvent, EpochEvent, ErrorEvent, ProgressEvent, StartEvent


def _pct(value) -> str:
    return f"{value * 100:.1f} %" if isinstance(value, (int, float)) else "-"


def _num(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


def describe(event: ProgressEvent) -> str | None:
    """One readable log line for a progress event (None for the frequent batch events)."""
    if isinstance(event, StartEvent):
        resumed = f", resuming at epoch {event.start_epoch}" if event.start_epoch > 1 else ""
        role, arch = ROLE_OF_JOB.get(event.job, event.job), str(event.arch)
        what = f"{arch.removeprefix('teacher_')} fusion teacher" if arch.startswith("teacher_") else role
        if event.job == "kd":
            what = "student, distilled from the teacher,"
        return (f"Training the {what} at {event.image_size} px on {event.device}: {event.n_train} training, "
                f"{event.n_val} validation, {event.n_test} test images; {event.epochs} epochs{resumed}.")
    if isinstance(event, EpochEvent):
        best = "  (best so far)" if event.best_epoch == event.epoch else ""
        return (f"Epoch {event.epoch}/{event.epochs}: train loss {_num(event.train_loss)}, "
                f"validation loss {_num(event.val_loss)}, accuracy {_pct(event.val_acc)}, "
                f"QWK {_num(event.val_qwk)}, MAE {_num(event.val_mae, 2)} "
                f"({_num(event.seconds, 1)} s, {_num(event.images_per_s, 1)} images/s){best}")
    if isinstance(event, DoneEvent):
        val = event.metrics.get("val", {}) if isinstance(event.metrics, dict) else {}
        early = ", stopped early" if event.stopped_early else ""
        return (f"Finished: best epoch {event.best_epoch}{early}; validation accuracy {_pct(val.get('acc'))}, "
                f"QWK {_num(val.get('qwk'))}. Model {event.model_id} saved in {event.bundle}.")
    if isinstance(event, ErrorEvent):
        return f"Error: {event.message}"
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

    def update(self, event: ProgressEvent) -> float:
        """Feed one event; returns the fraction of the job done (0-1)."""
        if isinstance(event, StartEvent):
            self.reset()
            self.epochs, self.start_epoch = max(1, int(event.epochs)), int(event.start_epoch)
            self._first = (self._clock(), 0.0)  # the data and model are ready: training starts now
            return self.fraction
        if isinstance(event, BatchEvent):
            done = event.epoch - 1 + event.step / max(1, event.steps)
        elif isinstance(event, EpochEvent):
            done = float(event.epoch)
        elif isinstance(event, DoneEvent):
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
