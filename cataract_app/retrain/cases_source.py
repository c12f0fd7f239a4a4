"""Training on the case log: the cases reviewed since the active model was trained, optionally added to a dataset.

The engine writes them as a dataset folder (CaseLog.export; with `add_to`, merged with an
earlier dataset: engine.cases.merge) under the model store's case-exports/ folder, and the
panel then checks and trains on that folder like any other. The command-line twin is
`cataract-grade cases export OUT --since active [--add-to DATASET]`.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QCheckBox, QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from cataract_app.cases.table_model import local_time

EXPORTS_DIR = "case-exports"


def reviewed_since_active(db: Path, bundle: Path | None) -> tuple[str, int]:
    """(the active student's training date, how many cases were reviewed since); runs on a pool thread."""
    from engine.cases import CaseFilter, CaseLog, active_model_trained_at

    since = active_model_trained_at(bundle=bundle) if bundle is not None else active_model_trained_at()
    with CaseLog.open(db) as log:
        return since, log.count(CaseFilter(status=("reviewed",), reviewed_since=since))


def export_reviewed_since(db: Path, out: Path, since: str, add_to: Path | None):
    """Write the reviewed cases (added to `add_to` when given) as a dataset folder; hard links where possible."""
    from engine.cases import CaseLog

    out.parent.mkdir(parents=True, exist_ok=True)
    with CaseLog.open(db) as log:
        return log.export(out, since=since, link="hardlink", add_to=add_to)


class CasesSource(QWidget):
    """The 'reviewed cases' line of the dataset box; `use_dataset(folder)` hands the export to the panel."""

    def __init__(self, controller, tasks, use_dataset: Callable[[Path], None], parent=None) -> None:
        super().__init__(parent)
        self.controller, self.tasks, self._use_dataset = controller, tasks, use_dataset
        self.since: str | None = None
        self.count = 0
        self.base: Path | None = None
        self.last_export = None  # the engine's ExportResult of the last export
        self.summary = QLabel("Cases reviewed since the active model was trained: counting\u2026")
        self.summary.setWordWrap(True)
        self.add_to = QCheckBox("added to the dataset folder chosen above")
        self.add_to.setToolTip("Its rows, patients and splits are kept; a photograph reviewed again carries the new grade")
        self.use_button = QPushButton("Train on reviewed cases")
        self.use_button.setToolTip("Export them from the case log as a dataset folder, check it and train on it")
        self.outcome = QLabel("")
        self.outcome.setObjectName("muted")
        self.outcome.setWordWrap(True)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setObjectName("muted")
        row = QHBoxLayout()
        row.addWidget(self.use_button)
        row.addWidget(self.add_to, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        for w in (line, self.summary):
            layout.addWidget(w)
        layout.addLayout(row)
        layout.addWidget(self.outcome)
        self.use_button.clicked.connect(self.use)
        self.set_base(None)

    @property
    def db(self) -> Path | None:
        return self.controller.cases_db

    def set_base(self, folder: str | Path | None) -> None:
        """The dataset the user chose last: the one reviewed cases can be added to."""
        self.base = Path(folder) if folder else None
        self.add_to.setEnabled(self.base is not None)
        self.add_to.setText(f"added to {self.base.name}" if self.base else "added to the dataset folder chosen above")
        self.add_to.setToolTip(str(self.base) if self.base else "Choose a dataset folder above first")
        if self.base is None:
            self.add_to.setChecked(False)

    def refresh(self) -> None:
        """Count the cases reviewed since the active student was trained (in the background)."""
        if self.db is None:
            self.summary.setText("No case log is open in this window.")
            self.use_button.setEnabled(False)
            return
        bundle = self.controller.current_bundle("student")
        self.use_button.setEnabled(False)
        self.tasks.run("cases-count", lambda: reviewed_since_active(self.db, bundle), self._counted, self._failed)

    def _counted(self, answer: tuple[str, int]) -> None:
        self.since, self.count = answer
        self.summary.setText(f"Cases reviewed since the active student was trained ({local_time(self.since)}): "
                             f"<b>{self.count}</b>")
        self.use_button.setEnabled(self.count > 0)

    def _failed(self, message: str) -> None:
        self.summary.setText(f"The case log cannot be read: {html.escape(message)}")
        self.use_button.setEnabled(False)

    def use(self) -> None:
        """Export the reviewed cases (added to the chosen dataset when ticked) and make them the panel's dataset."""
        if self.since is None or self.db is None:
            return
        base = self.base if self.add_to.isChecked() else None
        out = self.controller.store.root / EXPORTS_DIR / time.strftime("%Y%m%d-%H%M%S-reviewed")
        self.use_button.setEnabled(False)
        self.outcome.setText("Exporting the reviewed cases\u2026")
        since, db = self.since, self.db
        self.tasks.run("cases-export", lambda: export_reviewed_since(db, out, since, base), self._exported,
                       self._export_failed)

    def _exported(self, result) -> None:
        self.last_export = result
        text = f"{result.rows} reviewed case{'s' if result.rows != 1 else ''}"
        if result.added_to is not None:
            text += f" added to {result.base_rows} rows of {result.added_to.name}"
            if result.replaced:
                text += f" ({len(result.replaced)} of its photographs reviewed again)"
        if result.skipped:
            text += f"; {len(result.skipped)} left out (file missing or changed)"
        self.outcome.setText(f"{text}, in {result.folder}.")
        self.use_button.setEnabled(True)
        self._use_dataset(result.folder)

    def _export_failed(self, message: str) -> None:
        self.outcome.setText(f"The reviewed cases could not be exported: {message}")
        self.use_button.setEnabled(self.count > 0)
