"""Batch grading in the window: choose a folder or drop files, grade them off the GUI thread into the case log.

The controller owns the bar above the case table and at most one BatchJob. It asks the
engine for everything (engine.batch through cataract_app.batch.job); the Cases table is read
again while results arrive, at most every REFRESH_MS. The dialogs (cataract_app.batch.dialog for
the folder and its details) are attributes
(`ask_folder`, `ask_csv_path`) so tests and unattended runs can answer them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from cataract_app.batch.bar import BatchBar, summary_headline
from cataract_app.batch.files import expand_inputs
from cataract_app.batch.job import BatchJob, BatchSummary
from cataract_app.cases.lanes import reader_opener
from cataract_app.errors import user_message
from engine.batch import csv_text

REFRESH_MS = 400
FOLDER_KEY = "batch_folder"
CASES_TAB = 1


class BatchController(QObject):
    """Start, follow, cancel and summarise one batch at a time."""

    started = Signal(int)  # files to grade
    finished = Signal(object)  # BatchSummary

    def __init__(self, window: QWidget, service, cases, status, tabs) -> None:
        super().__init__(window)
        self.window, self.service, self.cases, self.status, self.tabs = window, service, cases, status, tabs
        self.bar = BatchBar()
        cases.panel.layout().insertWidget(1, self.bar)  # under the Cases toolbar, over the table
        self.job: BatchJob | None = None
        self.summary: BatchSummary | None = None
        self._names: tuple[str, ...] = ()
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._refresh)
        self.bar.cancel_requested.connect(self.cancel)
        self.bar.csv_requested.connect(self.save_csv)
        self.ask_folder = self._ask_folder
        self.ask_csv_path = self._ask_csv_path

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    # ---- what the user asks ---------------------------------------------------------------------
    def choose_folder(self) -> None:
        """The Grade folder action: every image below the chosen folder (as `cases add --dir`), with its details."""
        chosen = self.ask_folder()
        if chosen:
            folder, details = chosen
            self.grade([folder], details)

    def grade(self, paths: Iterable[str | Path], details: Mapping[str, str | None] | None = None) -> bool:
        """Grade these files and folders into the case log; False (with a sentence) when it cannot start.

        `details` (patient_id, eye, visit_date, checked) go with every case; blank ones are a DICOM's own.
        """
        if self.running:
            self.status.message("A batch is being graded; cancel it or wait for it to finish.", 6000)
            return False
        why = self._cannot_start()
        inputs = expand_inputs(paths)
        if why is None and not inputs.files:
            why = "Nothing to grade: " + ("; ".join(inputs.problems) or "no image was given") + "."
        if why is not None:
            self.status.error(why)
            return False
        self._names = tuple(self.service.grader.schema.names)
        service = self.cases.service
        opener = reader_opener(service.path, service.writer)  # a connection of the batch's own thread
        if self.job is not None:
            self.job.deleteLater()  # the last batch's job: its thread has ended
        self.job = BatchJob(inputs.files, lambda: self.service.grader, self.service.lock, opener, inputs.problems, self,
                            details)
        self.job.progressed.connect(self.bar.show_progress)
        self.job.item_done.connect(self._item_done)
        self.job.finished.connect(self._finished)
        self.bar.start(len(inputs.files), len(inputs.problems))
        panel = self.cases.panel
        if panel.current_filter().patient_id or panel.current_filter().search:  # the new cases must show
            panel.patient.setText("")
            panel.set_search("")
        self.tabs.setCurrentIndex(CASES_TAB)  # the table fills as results arrive
        self._timer.start()
        self.job.start()
        self.started.emit(len(inputs.files))
        return True

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status.message("Cancelling the batch after the images being graded now\u2026", 6000)

    def save_csv(self) -> Path | None:
        """Write the batch's rows as `predict --csv` does (same columns, same values)."""
        from engine.fsutil import atomic_write_text

        if self.summary is None or not self.summary.items:
            return None
        path = self.ask_csv_path()
        if not path:
            return None
        try:
            atomic_write_text(path, csv_text([i.row for i in self.summary.items], self._names))
        except OSError as e:
            self.status.error(f"The CSV was not written to {path}: {user_message(e)}")
            return None
        self.status.message(f"{len(self.summary.items)} rows written to {path}", 10000)
        return Path(path)

    def shutdown(self) -> None:
        """On close: cancel and wait, so every graded file is committed and the Grader is free."""
        if self.job is not None:
            self.job.cancel()
            self.job.wait()

    # ---- what the job says ----------------------------------------------------------------------
    def _cannot_start(self) -> str | None:
        if self.service.grader is None:
            return "The batch cannot start: no model is loaded."
        if self.cases.service.error is not None:
            return f"The batch cannot start: the case log cannot be used ({self.cases.service.error})."
        return None

    def _item_done(self, _item) -> None:
        self._dirty = True

    def _refresh(self) -> None:
        if self._dirty and self.cases.panel.isVisible():
            self._dirty = False
            self.cases.panel.refresh()

    def _finished(self, summary: BatchSummary) -> None:
        self._timer.stop()
        self.summary = summary
        self.bar.show_summary(summary)
        self.cases.panel.refresh()
        headline = summary_headline(summary)
        if summary.error:
            self.status.error(headline)
        else:
            self.status.message(headline, 15000)
        self.finished.emit(summary)

    # ---- dialogs --------------------------------------------------------------------------------
    def _ask_folder(self) -> tuple[str, dict] | None:
        from cataract_app.batch.dialog import GradeFolderDialog

        start = self.window.settings.value(FOLDER_KEY, str(Path.home()))
        dialog = GradeFolderDialog(str(start), self.window)
        if dialog.exec() != GradeFolderDialog.DialogCode.Accepted:
            return None
        folder = dialog.folder.text().strip()
        self.window.settings.setValue(FOLDER_KEY, folder)
        return folder, dialog.details

    def _ask_csv_path(self) -> str:
        path, _ = QFileDialog.getSaveFileName(self.window, "Save the batch's grades", str(Path.home() / "grades.csv"),
                                              "CSV (*.csv)")
        return path
