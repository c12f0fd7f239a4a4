"""Unattended runs of the window: --sublabels, --screenshot and the hidden --measure-startup.

The Autopilot watches the window's signals the way a user watches the screen: once the
image is graded it enters the sub-labels, once the last answer is shown it saves the
picture or prints the timings, and any error shown ends the run with exit code 1.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

START_ENV = "CATARACT_GRADER_T0"  # epoch seconds at which a benchmark launched this process
PROCESS_T0 = time.time()
TIMEOUT_S = 600


def start_time() -> float:
    """When this run began: the launcher's clock if it passed one, else this module's import."""
    try:
        return float(os.environ[START_ENV])
    except (KeyError, ValueError):
        return PROCESS_T0


class Autopilot(QObject):
    """Drives one unattended run of `window`; `exit_code` is set when it ends the app."""

    def __init__(self, window, sublabels=None, screenshot: str | None = None, measure: bool = False, quit=None) -> None:
        super().__init__(window)
        self._quit = quit or (lambda code: QApplication.instance().exit(code))
        self.window = window
        self.sublabels = dict(sublabels or {})
        self.screenshot = screenshot
        self.measure = measure
        self.exit_code: int | None = None
        self.timings: dict[str, float] = {}
        self._t0 = start_time()
        self._sent = False
        self._done = False
        window.installEventFilter(self)
        window.model_loaded.connect(lambda _s: self._mark("model_ready_s"))
        window.grade_shown.connect(self._on_grade)
        window.input_refused.connect(self._on_refused)
        if self.unattended:
            window.error_shown.connect(self._on_error)
            QTimer.singleShot(TIMEOUT_S * 1000, lambda: self._fail(f"no result after {TIMEOUT_S} s"))

    @property
    def unattended(self) -> bool:
        return bool(self.screenshot or self.measure)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt override)
        if watched is self.window and event.type() == QEvent.Type.Show and "window_s" not in self.timings:
            self._mark("window_s")
            QTimer.singleShot(0, lambda: self._mark("event_loop_s"))  # the first turn of the event loop
        return False

    def _mark(self, key: str) -> None:
        self.timings.setdefault(key, time.time() - self._t0)

    def _on_grade(self, result) -> None:
        role = result.model.role if result.model else "student"
        if role == "student":
            self._mark("first_grade_s")
        if self.sublabels and not self._sent and role == "student":
            self._sent = True
            self._enter_sublabels()
            return
        if self.unattended and not self._done:
            self._done = True
            QTimer.singleShot(200, self._finish)  # let the layout settle before the picture

    def _on_refused(self, _check) -> None:
        """The input gate held the grade back: an unattended run shows (and saves) the refusal as the user sees it."""
        if self.unattended and not self._done:
            self._done = True
            QTimer.singleShot(200, self._finish)

    def _enter_sublabels(self) -> None:
        form = self.window.form
        try:
            schema = self.window.summary.schema
            for name, value in self.sublabels.items():
                schema.get(name)
                if value is not None:
                    schema.get(name).check(value)
                form.set_value(name, value)
        except ValueError as e:
            if self.unattended:
                self._fail(str(e))
            else:
                self.window.status.error(str(e))
            return
        self.window.grade_with_sublabels()

    def _finish(self) -> None:
        if self.measure:
            print(json.dumps({k: round(v, 4) for k, v in self.timings.items()}), flush=True)
        if self.screenshot:
            path = Path(self.screenshot)
            path.parent.mkdir(parents=True, exist_ok=True)
            if not self.window.grab().save(str(path), "PNG"):
                self._fail(f"could not write the screenshot to {path}")
                return
            print(f"saved {path}", flush=True)
        self._exit(0)

    def _on_error(self, message: str) -> None:
        self._fail(message)

    def _fail(self, message: str) -> None:
        if self.exit_code is None:
            print(f"error: {message}", file=sys.stderr, flush=True)
            self._exit(1)

    def _exit(self, code: int) -> None:
        if self.exit_code is None:
            self.exit_code = code
            self.window.close()
            self._quit(code)
