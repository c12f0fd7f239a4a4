"""Training jobs as child processes: one QProcess per job, its JSON lines turned into signals.

The child runs in its own session (process group) on POSIX, so Stop can end it and anything
it started with one killpg: SIGTERM first, SIGKILL after a short grace. A teacher-then-student
run is two jobs in a row, the second distilled from the first one's bundle.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from cataract_app.launcher import child_environment
from cataract_app.retrain.launch import ROLE_OF_JOB, train_command
from cataract_app.retrain.progress import describe
from engine.progress import DoneEvent, ErrorEvent, ProgressEvent, parse_line
from engine.train_config import TrainConfig

GRACE_MS = 700  # between SIGTERM and SIGKILL; the whole stop stays well under 2 s
TAIL_LINES = 40
POSIX = os.name == "posix"


@dataclass
class JobOutcome:
    """How one job (or a whole run) ended; `bundles` maps role -> new bundle folder."""

    ok: bool
    stopped: bool = False
    message: str = ""
    bundles: dict[str, Path] = field(default_factory=dict)
    tail: list[str] = field(default_factory=list)
    done: DoneEvent | None = None


class TrainProcess(QObject):
    """One `train` child process; emits its events and log lines, then `finished(JobOutcome)` once."""

    event = Signal(object)  # a typed engine.progress event
    log = Signal(str, str)  # text, kind: "info", "stderr" or "error"
    finished = Signal(object)  # JobOutcome

    def __init__(self, job: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self.proc: QProcess | None = None
        self.pid: int | None = None
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._buffers = {"out": b"", "err": b""}
        self._done: DoneEvent | None = None
        self._error: str | None = None
        self._stopping = False
        self._reported = False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.state() != QProcess.ProcessState.NotRunning

    def start(self, program: str, arguments: list[str]) -> None:
        proc = QProcess(self)
        env = QProcessEnvironment()
        for k, v in child_environment().items():
            env.insert(k, v)
        proc.setProcessEnvironment(env)
        if POSIX and hasattr(QProcess, "setUnixProcessParameters"):
            proc.setUnixProcessParameters(QProcess.UnixProcessFlag.CreateNewSession)
        proc.readyReadStandardOutput.connect(lambda: self._read("out"))
        proc.readyReadStandardError.connect(lambda: self._read("err"))
        proc.started.connect(self._on_started)
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_error)
        self.proc = proc
        proc.start(program, arguments)

    def stop(self) -> None:
        """End the job and its children: terminate now, kill after GRACE_MS if still there."""
        if not self.running:
            return
        self._stopping = True
        self.log.emit("Stopping the job\u2026", "info")
        self._signal_group(signal.SIGTERM if POSIX else None)
        QTimer.singleShot(GRACE_MS, self._force_kill)

    def _force_kill(self) -> None:
        if self.running:
            self.kill_now()

    def kill_now(self) -> None:
        """SIGKILL to the job's whole process group (or kill the child where there are no groups)."""
        self._signal_group(signal.SIGKILL if POSIX else None)

    def _signal_group(self, sig) -> None:
        if POSIX and self.pid:
            try:
                os.killpg(self.pid, sig)  # the child leads its own session, so its group id is its pid
                return
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc is not None:
            self.proc.kill()  # no process group (Windows, or an old Qt): end the child itself

    def _on_started(self) -> None:
        self.pid = int(self.proc.processId()) or None

    def _read(self, which: str) -> None:
        if self.proc is None:
            return
        chunk = bytes(self.proc.readAllStandardOutput() if which == "out" else self.proc.readAllStandardError())
        data = self._buffers[which] + chunk
        *lines, self._buffers[which] = data.split(b"\n")
        for raw in lines:
            self._line(raw.decode("utf-8", "replace").rstrip("\r"), which)

    def _line(self, text: str, which: str) -> None:
        if not text.strip():
            return
        event = parse_line(text) if which == "out" else None
        if event is not None:
            self._on_event(event)
            return
        self.tail.append(text)
        self.log.emit(text, "stderr" if which == "err" else "info")

    def _on_event(self, event: ProgressEvent) -> None:
        if isinstance(event, DoneEvent):
            self._done = event
        elif isinstance(event, ErrorEvent):
            self._error = str(event.message)
        line = describe(event)
        if line:
            self.tail.append(line)
            self.log.emit(line, "error" if isinstance(event, ErrorEvent) else "info")
        self.event.emit(event)

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._error = f"the training process could not be started ({self.proc.errorString()})"
            self._report(exit_code=-1, crashed=True)

    def _on_finished(self, exit_code: int, status: QProcess.ExitStatus) -> None:
        for which in ("out", "err"):
            self._read(which)
            if self._buffers[which]:
                self._line(self._buffers[which].decode("utf-8", "replace"), which)
                self._buffers[which] = b""
        if POSIX and self.pid:
            try:
                os.killpg(self.pid, signal.SIGKILL)  # anything the job left behind in its group
            except (ProcessLookupError, PermissionError):
                pass
        self._report(exit_code, status == QProcess.ExitStatus.CrashExit)

    def _report(self, exit_code: int, crashed: bool) -> None:
        if self._reported:
            return
        self._reported = True
        tail = list(self.tail)
        if self._stopping:
            outcome = JobOutcome(False, stopped=True, message="The job was stopped; the active models are unchanged.")
        elif exit_code == 0 and not crashed and self._done is not None:
            role = ROLE_OF_JOB.get(self.job, "student")
            outcome = JobOutcome(True, bundles={role: Path(self._done.bundle)}, done=self._done)
        elif self._error:
            outcome = JobOutcome(False, message=_sentence(self._error))
        elif crashed:
            outcome = JobOutcome(False, message="The training process ended unexpectedly (it crashed or was killed).")
        else:
            outcome = JobOutcome(False, message=f"The training process failed with exit code {exit_code}.")
        outcome.tail = tail
        self.finished.emit(outcome)


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


@dataclass(frozen=True)
class Step:
    job: str  # "teacher" or "kd"
    teacher: Path | None = None  # None for kd: the previous step's bundle


class TrainingRun(QObject):
    """One or two jobs in a row (teacher, student from a teacher, or teacher then student), one at a time."""

    step_started = Signal(int, int, str, str)  # index, count, job, run folder
    event = Signal(object)
    log = Signal(str, str)
    finished = Signal(object)  # JobOutcome over the whole run

    def __init__(self, steps: list[Step], dataset: Path, settings: TrainConfig, new_run_dir, parent=None) -> None:
        super().__init__(parent)
        self.steps, self.dataset, self.settings = steps, Path(dataset), settings
        self._new_run_dir = new_run_dir  # job -> a fresh run folder
        self.index = -1
        self.process: TrainProcess | None = None
        self.bundles: dict[str, Path] = {}
        self.tail: list[str] = []

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def start(self) -> None:
        self._next()

    def stop(self) -> None:
        self.steps = self.steps[: self.index + 1]  # no further step after this one
        if self.process is not None:
            self.process.stop()

    def _next(self) -> None:
        self.index += 1
        step = self.steps[self.index]
        teacher = (step.teacher or self.bundles.get("teacher")) if step.job == "kd" else None
        try:
            out = self._new_run_dir(step.job)
        except (OSError, ValueError) as e:
            self.finished.emit(JobOutcome(False, message=f"No run folder could be made: {e}.", bundles=dict(self.bundles)))
            return
        program, args = train_command(step.job, self.dataset, out, self.settings, teacher)
        self.process = TrainProcess(step.job, self)
        self.process.event.connect(self.event)
        self.process.log.connect(self.log)
        self.process.finished.connect(self._on_step_finished)
        self.step_started.emit(self.index, len(self.steps), step.job, str(out))
        self.log.emit(f"Run folder: {out}", "info")
        self.process.start(program, args)

    def _on_step_finished(self, outcome: JobOutcome) -> None:
        self.bundles.update(outcome.bundles)
        self.tail = outcome.tail
        if outcome.ok and self.index + 1 < len(self.steps):
            self._next()
            return
        outcome.bundles = dict(self.bundles)
        self.finished.emit(outcome)
