"""The retrain panel: check a dataset, train in a child process with live progress, compare, promote.

Training never runs in the app's process (retrain.job); checks and evaluations run on a pool
thread (retrain.tasks), so the window stays responsive throughout. Only the Promote button
changes the active model, through the window's TrainingController.
"""

from __future__ import annotations

import html
import time
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cataract_app import theme
from cataract_app.retrain.cases_source import CasesSource
from cataract_app.retrain.compare import ComparePane, evaluate_pair
from cataract_app.retrain.curves import LineChart
from cataract_app.retrain.form import DatasetBox, JobBox, SettingsBox
from cataract_app.retrain.job import JobOutcome, Step, TrainingRun
from cataract_app.retrain.launch import KD, ROLE_OF_JOB, SEQUENCE, TEACHER
from cataract_app.retrain.progress import ProgressClock, format_duration
from cataract_app.retrain.tasks import TaskRunner
from engine.progress import BatchEvent, EpochEvent, ProgressEvent, StartEvent

LOG_COLORS = {"info": theme.TEXT, "stderr": theme.MUTED, "error": theme.ERROR_TEXT}
TAIL_SHOWN = 12


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class RetrainDialog(QDialog):
    """Non-modal: closing it hides it, and a running job goes on (the main window asks before quitting)."""

    def __init__(self, controller, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setWindowTitle("Retrain models")
        self.tasks = TaskRunner(self)
        self.clock = ProgressClock()
        self.run: TrainingRun | None = None
        self.dataset: Path | None = None
        self.report = None
        self.outcome: JobOutcome | None = None
        self.candidates: dict[str, Path] = {}
        self.compared: dict[str, dict] = {}
        self.promoted = False
        self._step_t0 = 0.0
        self._step_label = self._step_role = ""
        self.step_seconds: list[tuple[str, float]] = []  # (role, wall seconds) of each finished step
        self._build()
        self.refresh_teachers()
        self._update_buttons()

    # ---- layout -----------------------------------------------------------------------------
    def _build(self) -> None:
        self.dataset_box, self.job_box, self.settings_box = DatasetBox(), JobBox(), SettingsBox()
        self.cases_source = CasesSource(self.controller, self.tasks, lambda folder: self.set_dataset(folder, False))
        self.dataset_box.layout().addWidget(self.cases_source)  # or: the cases reviewed since the last training
        self.start_button = QPushButton("Start training")
        self.start_button.setObjectName("primary")
        self.stop_button = QPushButton("Stop")
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.stop_button)
        left = QVBoxLayout()
        for w in (self.dataset_box, self.job_box, self.settings_box):
            left.addWidget(w)
        left.addLayout(buttons)
        left.addStretch(1)
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_scroll = QScrollArea()  # the advanced settings may not fit a small screen
        left_scroll.setWidget(left_widget)
        left_scroll.setWidgetResizable(True)
        left_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        left_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left_scroll.setFixedWidth(450)

        self.stage = QLabel("No job has run yet.")
        self.stage.setStyleSheet("font-weight: 600; font-size: 11pt;")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("%p %")
        self.eta = QLabel("")
        self.eta.setObjectName("muted")
        self.error = QLabel("")
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.hide()
        self.loss_chart = LineChart("Loss")
        self.loss_chart.add_series("batch", "train (batches)", "#b9c6d3", width=1.2, dots=False)
        self.loss_chart.add_series("train", "train", theme.ACCENT)
        self.loss_chart.add_series("val", "validation", "#d9822b")
        self.metric_chart = LineChart("Validation accuracy and QWK", y_range=(0.0, 1.0))
        self.metric_chart.add_series("acc", "accuracy", theme.ACCENT)
        self.metric_chart.add_series("qwk", "QWK", "#2e9e5b")
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(3000)
        charts = QHBoxLayout()
        charts.addWidget(self.loss_chart)
        charts.addWidget(self.metric_chart)
        progress_tab = QWidget()
        pt = QVBoxLayout(progress_tab)
        pt.addLayout(charts, 3)
        pt.addWidget(self.log_view, 2)

        self.compare_tabs = QTabWidget()
        self.promote_button = QPushButton("Promote")
        self.promote_button.setObjectName("primary")
        self.with_teacher = QCheckBox("together with the new teacher")
        self.promote_note = QLabel("")
        self.promote_note.setWordWrap(True)
        promote_row = QHBoxLayout()
        promote_row.addWidget(self.promote_button)
        promote_row.addWidget(self.with_teacher)
        promote_row.addWidget(self.promote_note, 1)
        compare_tab = QWidget()
        ct = QVBoxLayout(compare_tab)
        ct.addWidget(self.compare_tabs, 1)
        ct.addLayout(promote_row)
        self.tabs = QTabWidget()
        self.tabs.addTab(progress_tab, "Progress")
        self.tabs.addTab(compare_tab, "Compare and promote")

        right = QVBoxLayout()
        header = QHBoxLayout()
        header.addWidget(self.stage, 1)
        header.addWidget(self.eta)
        right.addLayout(header)
        right.addWidget(self.progress)
        right.addWidget(self.error)
        right.addWidget(self.tabs, 1)
        root = QHBoxLayout(self)
        root.addWidget(left_scroll)
        root.addLayout(right, 1)
        self.resize(1240, 800)

        self.dataset_box.choose_requested.connect(self.choose_dataset)
        self.dataset_box.folder_entered.connect(self.set_dataset)
        self.dataset_box.recheck_requested.connect(lambda: self.dataset and self.set_dataset(self.dataset))
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.promote_button.clicked.connect(self.promote)

    # ---- dataset ------------------------------------------------------------------------------
    def choose_dataset(self) -> None:
        start = str(self.dataset or self.controller.last_dataset_folder() or Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Choose a labelled dataset folder", start)
        if folder:
            self.set_dataset(folder)

    def set_dataset(self, path: str | Path, remember: bool = True) -> None:
        """Check the folder in the background; training is possible once it has no problems.

        A folder the user chose is remembered (reviewed cases can be added to it); an export of them is not.
        """
        from engine.data.manifest import validate_dataset

        self.dataset, self.report = Path(path), None
        if remember:
            self.controller.remember_dataset_folder(str(path))
            self.cases_source.set_base(path)
        self.dataset_box.show_checking(str(path))
        self._update_buttons()
        self.tasks.run("validate", partial(validate_dataset, Path(path), check_images=True),
                       self._on_validated, self.dataset_box.show_failure)

    def _on_validated(self, report) -> None:
        self.report = report
        self.dataset_box.show_report(report)
        self._update_buttons()

    @property
    def dataset_ok(self) -> bool:
        return self.report is not None and self.report.ok

    # ---- the job ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.run is not None and self.run.running

    def refresh_teachers(self) -> None:
        choices = self.controller.teacher_choices()
        self.job_box.set_teachers(choices)
        self.settings_box.set_teachers(choices)

    def start(self) -> bool:
        """Start the chosen job; False (with the reason shown) when it cannot start."""
        if self.running:
            return False
        if not self.dataset_ok:
            self._show_error("Choose a dataset folder without problems first.")
            return False
        job, settings = self.job_box.job(), self.settings_box.settings()
        if job == KD and self.job_box.teacher() is None:
            self._show_error("Choose the teacher to distil the student from.")
            return False
        steps = {TEACHER: [Step("teacher")], KD: [Step("kd", self.job_box.teacher())],
                 SEQUENCE: [Step("teacher"), Step("kd")]}[job]
        self._reset_for_run()
        self.run = TrainingRun(steps, self.dataset, settings, self.controller.store.new_run_dir, self)
        self.run.step_started.connect(self._on_step_started)
        self.run.event.connect(self._on_event)
        self.run.log.connect(self._append_log)
        self.run.finished.connect(self._on_finished)
        self.run.start()
        self._update_buttons()
        return True

    def stop(self) -> None:
        if self.running:
            self.stop_button.setEnabled(False)
            self.run.stop()

    def _reset_for_run(self) -> None:
        self.outcome, self.candidates, self.compared, self.promoted = None, {}, {}, False
        for role in ("student", "teacher"):
            self.tasks.cancel(f"compare-{role}")  # a late answer of the last run must not land here
        self.step_seconds, self._step_t0 = [], 0.0
        self.error.hide()
        self.log_view.clear()
        self.progress.setValue(0)
        self.compare_tabs.clear()
        self.promote_note.setText("")
        self.tabs.setCurrentIndex(0)

    def _on_step_started(self, index: int, count: int, job: str, out: str) -> None:
        self._close_step()
        self._step_t0, self._step_role = time.monotonic(), ROLE_OF_JOB[job]
        self._step_label = f"{ROLE_OF_JOB[job].capitalize()}" + (f" (step {index + 1} of {count})" if count > 1 else "")
        self.stage.setText(f"{self._step_label}: starting\u2026")
        self.eta.setText("")
        self.progress.setValue(0)
        self.clock.reset()
        self.loss_chart.clear()
        self.metric_chart.clear()

    def _on_event(self, event: ProgressEvent) -> None:
        fraction = self.clock.update(event)
        self.progress.setValue(round(fraction * 1000))
        if isinstance(event, StartEvent):
            for chart in (self.loss_chart, self.metric_chart):
                chart.set_x_max(event.epochs)
        elif isinstance(event, BatchEvent):
            self.loss_chart.add_point("batch", event.epoch - 1 + event.step / max(1, event.steps), event.loss)
            self.stage.setText(f"{self._step_label}: epoch {event.epoch} of {self.clock.epochs}")
        elif isinstance(event, EpochEvent):
            self.loss_chart.add_point("train", event.epoch, event.train_loss)
            self.loss_chart.add_point("val", event.epoch, event.val_loss)
            self.metric_chart.add_point("acc", event.epoch, event.val_acc)
            self.metric_chart.add_point("qwk", event.epoch, event.val_qwk)
            self.stage.setText(f"{self._step_label}: epoch {event.epoch} of {self.clock.epochs} done")
        if isinstance(event, (BatchEvent, EpochEvent)):
            self.eta.setText(format_duration(self.clock.seconds_left()))

    def _append_log(self, text: str, kind: str) -> None:
        color = LOG_COLORS.get(kind, theme.TEXT)
        self.log_view.appendHtml(f'<span style="color:{color}; white-space:pre-wrap">{html.escape(text)}</span>')

    def _close_step(self) -> None:
        if self._step_t0:
            self.step_seconds.append((self._step_role, time.monotonic() - self._step_t0))
            self._append_log(f"The {self._step_role} took {_minutes(self.step_seconds[-1][1])}.", "info")
            self._step_t0 = 0.0

    def _on_finished(self, outcome: JobOutcome) -> None:
        self.outcome = outcome
        self._close_step()
        self.eta.setText("")
        if outcome.ok:
            self.progress.setValue(1000)
            total = sum(t for _r, t in self.step_seconds)
            parts = ", ".join(f"{r} {_minutes(t)}" for r, t in self.step_seconds)
            self.stage.setText(f"Finished in {_minutes(total)}" + (f" ({parts})." if len(self.step_seconds) > 1 else "."))
        elif outcome.stopped:
            self.stage.setText("Stopped.")
            self._show_error(outcome.message, tail=False)
        else:
            self.stage.setText("The job failed.")
            tail = "\n".join(outcome.tail[-TAIL_SHOWN:])
            self._show_error(outcome.message + (f"\n\nLast lines of the log:\n{tail}" if tail else ""))
        self.candidates = dict(outcome.bundles)
        if self.candidates:
            self._start_compare()
        self.refresh_teachers()
        self._update_buttons()

    # ---- compare and promote --------------------------------------------------------------------
    def _start_compare(self) -> None:
        settings = self.settings_box.settings()
        for role in ("student", "teacher"):
            if role not in self.candidates:
                continue
            pane = ComparePane(role)
            pane.set_busy(f"Scoring the new and the active {role} on the same validation images\u2026")
            self.compare_tabs.addTab(pane, f"New {role}")
            fn = partial(evaluate_pair, self.candidates[role], self.controller.current_bundle(role), self.dataset,
                         settings.device, settings.batch_size)
            self.tasks.run(f"compare-{role}", fn, partial(self._on_compared, role, pane),
                           partial(self._on_compare_failed, role, pane))
        self.with_teacher.setVisible(len(self.candidates) == 2)
        self.with_teacher.setChecked(len(self.candidates) == 2)
        self.tabs.setCurrentIndex(1)

    def _on_compared(self, role: str, pane: ComparePane, results: dict) -> None:
        self.compared[role] = results
        pane.set_results(results)
        self._update_buttons()

    def _on_compare_failed(self, role: str, pane: ComparePane, message: str) -> None:
        self.compared[role] = {"error": message}
        pane.set_busy(f"The new {role} could not be scored: {message}")
        self._update_buttons()

    def promote_role(self) -> str | None:
        """The role the Promote button acts on: the student when the run made one, else the teacher."""
        return "student" if "student" in self.candidates else ("teacher" if self.candidates else None)

    def promote(self) -> bool:
        """Make the new model active (with the new teacher when asked); True when it was done."""
        role = self.promote_role()
        if role is None:
            return False
        partner = self.candidates.get("teacher") if role == "student" and self.with_teacher.isChecked() else None
        worse = self._worse_roles(role, partner is not None)
        if worse and not self.controller.ask(
            "Promote a weaker model?",
            f"The new {' and '.join(worse)} scored a lower QWK than the active one on the same images. "
            "Make it active anyway?",
        ):
            return False
        try:
            card = self.controller.promote(self.candidates[role], partner)
        except ValueError as e:
            self.promote_note.setText(f'<span style="color:{theme.ERROR_TEXT}">{html.escape(str(e))}</span>')
            return False
        both = " and the new teacher are" if partner is not None else " is"
        self.promote_note.setText(f"{card.name} ({card.model_id}){both} now active.")
        self.promoted = True
        self._update_buttons()
        self.refresh_teachers()
        return True

    def _worse_roles(self, role: str, with_partner: bool) -> list[str]:
        roles = [role] + (["teacher"] if with_partner else [])
        out = []
        for r in roles:
            new, active = self.compared.get(r, {}).get("new"), self.compared.get(r, {}).get("active")
            if isinstance(new, dict) and isinstance(active, dict) and new.get("qwk", 0) < active.get("qwk", 0):
                out.append(r)
        return out

    # ---- state ------------------------------------------------------------------------------------
    def _show_error(self, text: str, tail: bool = True) -> None:
        self.error.setText(text)
        self.error.setObjectName("error" if tail else "info")
        self.error.style().unpolish(self.error)
        self.error.style().polish(self.error)
        self.error.show()

    def _update_buttons(self) -> None:
        running = self.running
        self.start_button.setEnabled(not running and self.dataset_ok)
        self.stop_button.setEnabled(running)
        for box in (self.dataset_box, self.job_box, self.settings_box):
            box.setEnabled(not running)
        role = self.promote_role()
        scored = bool(role) and "new" in self.compared.get(role, {})
        self.promote_button.setEnabled(scored and not self.promoted and not running)
        self.promote_button.setText("Promoted" if self.promoted else f"Promote the new {role}" if role else "Promote")
