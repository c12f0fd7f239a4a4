"""`cataract-grader --self-test`: prove an installed (frozen) app works end to end, offscreen.

It grades the bundled sample photograph with the shipped models, opens the main window
once, reads the sample back from a DICOM copy and writes its PDF report, and runs a one-epoch training job through the app's own executable, exactly the way
the retrain panel starts its jobs. One line per check; exit code 0 only when all passed.
Nothing of the user's is read or changed: models, settings and the model store stay
untouched (the window and the job use a scratch folder).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cataract_app import launcher
from engine.model_store import STORE_ENV  # no torch: the store module imports it lazily
from engine.progress import DoneEvent, EpochEvent, ErrorEvent, StartEvent, parse_line
from engine.resources import default_model_dir, resources_dir
from engine.schema import GRADES

SAMPLE_NAME = "eye-sample.jpg"
WINDOW_TIMEOUT_S = 120
TRAIN_TIMEOUT_S = 600
TRAIN_ARGS = ("--epochs", "1", "--image-size", "32", "--batch-size", "8", "--device", "cpu", "--progress", "json")


class SelfTestError(Exception):
    """A check failed; the message says which part and why, in one sentence."""


@dataclass(frozen=True)
class Check:
    """The outcome of one check, as printed in the report."""

    name: str
    ok: bool
    detail: str
    seconds: float

    def line(self) -> str:
        return f"  {'ok  ' if self.ok else 'FAIL'}  {self.name:<7} {self.detail}  ({self.seconds:.1f} s)"


def sample_path() -> Path:
    """The synthetic photograph shipped in resources/samples/ for this test."""
    return resources_dir() / "samples" / SAMPLE_NAME


def engine_command(*args: str) -> list[str]:
    """How this app runs an engine subcommand: the frozen executable itself, or `python -m cataract_app`."""
    return launcher.engine_command(args, module="cataract_app")


class TrainingJob:
    """The micro training job: 16 synthetic 64 px images, one epoch at 32 px, as a child process."""

    def __init__(self, scratch: Path) -> None:
        from engine.synth.sheet import write_dataset

        data = write_dataset(scratch / "data", n=16, seed=0, image_size=64, balanced=True)
        self.out = scratch / "run"
        self.command = engine_command("train", "student", str(data), "--out", str(self.out), *TRAIN_ARGS)
        self.stdout_path, self.stderr_path = scratch / "train.out", scratch / "train.err"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env=launcher.child_environment())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def finish(self, timeout_s: float = TRAIN_TIMEOUT_S) -> str:
        """Wait for the job, check its JSON lines end with 'done' and that its bundle loads."""
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise SelfTestError(f"the training job did not finish within {timeout_s:.0f} s") from None
        lines = self.stdout_path.read_text(encoding="utf-8", errors="replace").splitlines()
        events = [e for e in map(parse_line, lines) if e is not None]
        errors = [e.message for e in events if isinstance(e, ErrorEvent)]
        if code != 0 or errors or not events or not isinstance(events[-1], DoneEvent):
            last = errors[-1] if errors else _tail(self.stderr_path)
            raise SelfTestError(f"the training job ended with exit code {code} and no 'done' event: {last}")
        program = " ".join([Path(self.command[0]).name, *self.command[1:self.command.index("train")]])
        return _check_trained_bundle(events, program)


def _tail(path: Path, lines: int = 6) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").strip() if path.is_file() else ""
    return " | ".join(text.splitlines()[-lines:]) or "(nothing on stderr)"


def _check_trained_bundle(events: list, program: str) -> str:
    from engine.bundle import load_bundle

    done = events[-1]
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    model, card = load_bundle(done.bundle, expect_role="student")
    n_params = sum(p.numel() for p in model.parameters())
    start = next((e for e in events if isinstance(e, StartEvent)), None)
    return (f"{len(epochs)} epoch on {start.n_train if start else '?'} images via `{program} train`, "
            f"bundle {card.model_id} loads ({n_params / 1e6:.1f} M parameters)")


def check_grade(student: Path, teacher: Path, device: str) -> str:
    """Grade the sample with the student (with its CAM), then with the teacher from the student's sub-labels."""
    from engine.infer import Grader
    from engine.io import read_image

    grader = Grader(student=student, teacher=teacher, device=device)
    rgb = read_image(sample_path())
    result = grader.grade(rgb)
    if result.grade not in GRADES or abs(sum(result.probabilities) - 1.0) > 1e-3:
        raise SelfTestError(f"the student gave grade {result.grade} with probabilities summing to {sum(result.probabilities):.3f}")
    if result.cam is None or result.cam.shape != rgb.shape[:2]:
        raise SelfTestError(f"the heat map has shape {getattr(result.cam, 'shape', None)}, not the image's {rgb.shape[:2]}")
    fused = grader.grade(rgb, grader.request(sublabels=result.sublabels_predicted))
    return (f"student grade {result.grade} ({result.confidence:.0%}), teacher grade {fused.grade} "
            f"from the student's sub-labels, on {grader.device}")


def check_window(student: Path, teacher: Path, device: str, scratch: Path) -> str:
    """Open the main window once (offscreen), let it load the models and grade the sample."""
    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtGui import QGuiApplication

    from cataract_app.app import make_application
    from cataract_app.grading.loading import LoadOptions
    from cataract_app.main_window import MainWindow

    app = make_application()
    settings = QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(LoadOptions(student=str(student), teacher=str(teacher), device=device), settings,
                        cases_db=scratch / "cases.sqlite3")
    outcome: dict[str, object] = {}
    loop = QEventLoop()

    def finish(key: str, value: object) -> None:
        outcome.setdefault(key, value)
        loop.quit()

    window.grade_shown.connect(lambda result: finish("grade", result))
    window.error_shown.connect(lambda message: finish("error", message))
    QTimer.singleShot(WINDOW_TIMEOUT_S * 1000, lambda: finish("timeout", None))
    window.show()
    shown = window.isVisible()
    window.open_path(sample_path())
    loop.exec()
    window.close()
    app.processEvents()
    if "error" in outcome:
        raise SelfTestError(f"the window showed an error: {outcome['error']}")
    if "grade" not in outcome:
        raise SelfTestError(f"the window showed no grade within {WINDOW_TIMEOUT_S} s")
    if not shown:
        raise SelfTestError("the main window did not become visible")
    return f"main window shown ({QGuiApplication.platformName()}), showed grade {outcome['grade'].grade}"


def _timed(name: str, fn: Callable[[], str]) -> Check:
    t0 = time.perf_counter()
    try:
        detail, ok = fn(), True
    except (SelfTestError, ValueError, OSError) as e:  # the engine's user-facing errors are ValueErrors
        detail, ok = str(e), False
    except Exception as e:  # a self-test reports every failure instead of dying on the first
        traceback.print_exc(file=sys.stderr)
        detail, ok = f"{type(e).__name__}: {e}", False
    return Check(name, ok, detail, time.perf_counter() - t0)


def _report(check: Check) -> Check:
    print(check.line(), flush=True)
    return check


def run_checks(student: Path, teacher: Path, device: str, scratch: Path) -> list[Check]:
    """Start the training job, grade, open the window, then collect the job: all in `scratch`."""
    checks = [_report(_timed("sample", _describe_sample))]
    job: list[TrainingJob] = []

    def start() -> str:
        job.append(TrainingJob(scratch))
        return "started"

    started = _timed("train", start)
    checks.append(_report(_timed("grade", lambda: check_grade(student, teacher, device))))
    checks.append(_report(_timed("window", lambda: check_window(student, teacher, device, scratch))))
    checks.append(_report(_timed("report", lambda: _clinic(student, device, scratch))))
    if not job:
        return [*checks, _report(started)]
    try:
        train = _timed("train", lambda: job[0].finish())
    finally:
        job[0].stop()
    return [*checks, _report(Check("train", train.ok, train.detail, started.seconds + train.seconds))]


def _clinic(student: Path, device: str, scratch: Path) -> str:
    from cataract_app.selftest_clinic import ClinicCheckError, check_dicom_report

    try:
        return check_dicom_report(sample_path(), student, device, scratch)
    except ClinicCheckError as e:
        raise SelfTestError(str(e)) from None


def _describe_sample() -> str:
    path = sample_path()
    if not path.is_file():
        raise SelfTestError(f"the sample photograph {path} is missing from this installation")
    return f"{path} ({path.stat().st_size // 1024} KB)"


def run_self_test(student: str | None = None, teacher: str | None = None, device: str = "auto") -> int:
    """Run every check with the given bundles (default: the shipped ones); 0 when all passed, else 1."""
    from engine import __version__

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    student_dir = Path(student) if student else default_model_dir("student")
    teacher_dir = Path(teacher) if teacher else default_model_dir("teacher")
    kind = "frozen" if launcher.is_frozen() else "from source"
    print(f"Cataract Grader {__version__} self-test ({kind}, {sys.executable})", flush=True)
    t0 = time.perf_counter()
    saved_home = os.environ.get(STORE_ENV)
    with tempfile.TemporaryDirectory(prefix="cataract-selftest-") as tmp:
        os.environ[STORE_ENV] = str(Path(tmp) / "store")  # the user's model store stays untouched
        try:
            checks = run_checks(student_dir, teacher_dir, device, Path(tmp))
        finally:
            if saved_home is None:
                os.environ.pop(STORE_ENV, None)
            else:
                os.environ[STORE_ENV] = saved_home
    failed = [c for c in checks if not c.ok]
    if failed:
        print(f"self-test FAILED ({', '.join(c.name for c in failed)}): {failed[0].detail}", file=sys.stderr, flush=True)
        return 1
    print(f"self-test passed in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0
