"""The Report action: the PDF of the current case, or of the cases selected in the Cases table, via engine.report.

The pages are gathered and drawn on a thread (a heat map per page needs the Grader, taken
under its lock; the case log is read through a connection of that thread). The current
case's page reuses the heat map on screen. The PDF is written atomically by the engine:
when it cannot be written (a full disk, no permission), the user is told why, the file that
was there is untouched, and the pages already drawn are kept for "Save elsewhere".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from cataract_app.cases.lanes import reader_opener
from cataract_app.errors import user_message
from engine.schema import DEFAULT_SCHEMA

CASES_TAB = 1
FOLDER_KEY = "report_folder"


def report_targets(on_cases_tab: bool, selected: Sequence[int], case_id: int | None,
                   image: str | None) -> list[int | str]:
    """What the report covers: the selected cases on the Cases tab, else the case on screen, else its image."""
    if on_cases_tab and selected:
        return list(selected)
    if case_id is not None:
        return [case_id]
    return [image] if image else []


def default_name(targets: Sequence[int | str]) -> str:
    if len(targets) == 1:
        t = targets[0]
        return f"case-{t}.pdf" if isinstance(t, int) else f"{Path(str(t)).stem}-report.pdf"
    return f"cases-{len(targets)}.pdf"


def gather(targets: Sequence[int | str], log, grader, cam_target: object, heat=None) -> list:
    """The report's pages (engine.report); `heat` is the screen's result for a single current case."""
    from engine.report import case_item, model_notices, report_items

    if heat is not None and len(targets) == 1 and isinstance(targets[0], int):
        notices = model_notices(grader)
        return [case_item(log.get(targets[0]), log, grader, cam_target, "gradcam", notices, heat=heat)]
    return report_items(list(targets), log=log, grader=grader, cam_target=cam_target)


class ReportController(QObject):
    """Asks where to save, makes the PDF off the GUI thread, says where it went or why it did not."""

    saved = Signal(str, int)  # path, pages
    failed = Signal(str)  # the sentence shown

    def __init__(self, window: QWidget, service, cases, session, status, tabs, settings,
                 colormap: Callable[[], str | None] = lambda: None) -> None:
        super().__init__(window)
        self.window, self.service, self.cases, self.session = window, service, cases, session
        self.status, self.tabs, self.settings, self._colormap = status, tabs, settings, colormap
        self.items: list = []  # the last pages drawn: kept when writing failed
        self._busy = False
        self._done_signal = _Relay(self)
        self._done_signal.done.connect(self._done)
        self.ask_path = self._ask_path
        self.ask_retry = self._ask_retry

    @property
    def busy(self) -> bool:
        return self._busy

    def targets(self) -> list[int | str]:
        s = self.session
        return report_targets(self.tabs.currentIndex() == CASES_TAB, self.cases.panel.selected_ids(),
                              s.case.id if s.case is not None else None, s.path if s.image is not None else None)

    def report(self) -> bool:
        """The Report action; False when nothing was started (nothing to report, the user cancelled)."""
        if self._busy:
            self.status.message("A report is being made; wait for it to finish.", 6000)
            return False
        targets = self.targets()
        if not targets:
            self.status.message("Nothing to report: open an image or select cases in the Cases tab.", 8000)
            return False
        path = self.ask_path(default_name(targets))
        if not path:
            return False
        heat = self._screen_heat(targets)
        self._start(lambda: self._make(targets, heat, path))
        return True

    def write_again(self, path: str) -> None:
        """Write the pages kept from a failed write to another file."""
        items = list(self.items)
        self._start(lambda: self._write(items, path))

    # ---- on the thread --------------------------------------------------------------------------
    def _start(self, work: Callable[[], tuple]) -> None:
        self._busy = True
        self.status.message("Making the report\u2026")

        def run() -> None:
            try:
                outcome = work()
            except Exception as e:  # noqa: BLE001  (every failure reaches the user as a sentence)
                outcome = ("failed", user_message(e), None)
            try:
                self._done_signal.done.emit(outcome)
            except RuntimeError:  # the window closed meanwhile; the file was written or not, whole
                pass

        threading.Thread(target=run, name="report", daemon=True).start()

    def _make(self, targets: Sequence[int | str], heat, path: str) -> tuple:
        service = self.cases.service
        log = reader_opener(service.path, service.writer)()
        try:
            with self.service.lock:
                grader = self.service.grader
                items = gather(targets, log, grader, self.session.target, heat)
        finally:
            log.close()
        self.items = items
        return self._write(items, path)

    def _write(self, items: list, path: str) -> tuple:
        from engine.report import ReportError, write_pdf

        grader = self.service.grader
        schema = grader.schema if grader is not None else DEFAULT_SCHEMA
        try:
            out = write_pdf(path, items, schema=schema, colormap=self._colormap() or "jet")
        except ReportError as e:
            return "write_failed", user_message(e), path
        return "saved", str(out), len(items)

    # ---- back on the GUI thread -----------------------------------------------------------------
    def _done(self, outcome: tuple) -> None:
        self._busy = False
        kind, text, extra = outcome
        if kind == "saved":
            self.settings.setValue(FOLDER_KEY, str(Path(text).parent))
            pages = f"{extra} page{'s' if extra != 1 else ''}"
            self.status.message(f"Report saved to {text} ({pages})", 15000)
            self.saved.emit(text, extra)
            return
        message = f"The report was not saved: {text}"
        self.status.error(message)
        self.failed.emit(message)
        if kind == "write_failed" and self.items:
            retry = self.ask_retry(message, default_name_for(extra))
            if retry:
                self.write_again(retry)

    def _screen_heat(self, targets: Sequence[int | str]):
        s = self.session
        shown = s.cam_result
        if (len(targets) == 1 and s.case is not None and targets[0] == s.case.id and shown is not None
                and shown.cam is not None):
            return shown
        return None

    # ---- dialogs --------------------------------------------------------------------------------
    def _ask_path(self, name: str) -> str:
        folder = Path(str(self.settings.value(FOLDER_KEY, str(Path.home()))))
        path, _ = QFileDialog.getSaveFileName(self.window, "Save the report", str(folder / name), "PDF (*.pdf)")
        return path

    def _ask_retry(self, message: str, name: str) -> str:
        box = QMessageBox(QMessageBox.Icon.Warning, "Report not saved",
                          f"{message}\n\nNothing was overwritten. The pages are kept: save them elsewhere?",
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Cancel, self.window)
        box.button(QMessageBox.StandardButton.Save).setText("Save elsewhere\u2026")
        if box.exec() != QMessageBox.StandardButton.Save:
            return ""
        return self._ask_path(name)


def default_name_for(path: str | None) -> str:
    return Path(path).name if path else "report.pdf"


class _Relay(QObject):
    """Carries a thread's outcome to the GUI thread."""

    done = Signal(object)
