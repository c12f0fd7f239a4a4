"""Shared by the app's clinic tests: a window on tiny bundles and a temporary case log, and waiting for it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from cataract_app.grading.loading import LoadOptions
from cataract_app.main_window import MainWindow

WAIT_MS = 60_000


def open_window(qtbot, bundles, tmp_path: Path, db: Path) -> MainWindow:
    student, teacher = bundles
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(LoadOptions(str(student), str(teacher), "cpu"), settings, cases_db=db)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.summary is not None or w.model_error is not None, timeout=WAIT_MS)
    assert w.model_error is None
    return w


def idle(qtbot, w: MainWindow) -> None:
    qtbot.waitUntil(lambda: w.service.pending == 0 and w.reader.pending == 0 and w.cases.service.wait_idle(),
                    timeout=WAIT_MS)


def graded_case(qtbot, w: MainWindow, path: Path):
    """Open `path`, wait for its grade and its case."""
    w.open_path(path)
    qtbot.waitUntil(lambda: w.student is not None and w.student.source == str(path), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: w.session.case is not None, timeout=WAIT_MS)
    idle(qtbot, w)
    return w.session.case


def run_batch(qtbot, w: MainWindow, paths) -> object:
    """Start a batch in the window and wait for its summary."""
    with qtbot.waitSignal(w.batch.finished, timeout=WAIT_MS) as blocker:
        assert w.batch.grade(paths)
    return blocker.args[0]
