"""The batch's strip above the case table: a progress bar with the count and an ETA, Cancel, then the summary."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout

from cataract_app.batch.job import BatchSummary
from engine.batch import BatchProgress

SHOWN_PER_LIST = 12  # lines per list in the summary; the rest are counted


def duration(seconds: float) -> str:
    """'8 s', '3 min 05 s', '1 h 02 min': an ETA a person reads at a glance."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def progress_text(p: BatchProgress) -> str:
    """'12 of 40 files · 1 failed · about 30 s left' (a failed file counts as done)."""
    parts = [f"{p.done} of {p.total} files"]
    if p.failed:
        parts.append(f"{p.failed} failed")
    if p.finished:
        parts.append(f"stopped after {duration(p.elapsed_s)}" if p.cancelled else f"took {duration(p.elapsed_s)}")
    elif p.eta_s is not None:
        parts.append(f"about {duration(p.eta_s)} left")
    else:
        parts.append("starting\u2026")
    return " \u00b7 ".join(parts)


def summary_headline(s: BatchSummary) -> str:
    """One line: what happened to every file."""
    if s.error and not s.items:
        return f"The batch could not run: {s.error}"
    head = f"{len(s.recorded)} of {s.total} photographs graded into the case log in {duration(s.elapsed_s)}"
    extra = []
    if s.cancelled:
        extra.append(f"cancelled, {s.not_reached} not graded")
    if s.failed:
        extra.append(f"{len(s.failed)} failed")
    if s.not_recorded:
        extra.append(f"{len(s.not_recorded)} graded but not recorded")
    if s.input_problems:
        extra.append(f"{len(s.input_problems)} with input problems")
    if s.skipped:
        extra.append(f"{len(s.skipped)} left out")
    if s.error:
        extra.append(f"stopped: {s.error}")
    return head + (f" ({'; '.join(extra)})" if extra else "") + "."


def summary_html(s: BatchSummary) -> str:
    """The details under the headline: each failure with its reason, each input problem, what was left out."""
    sections = []
    rows = [(i.path, i.error) for i in s.failed] + [(i.path, i.error) for i in s.not_recorded]
    sections.append(_section("Failed", rows))
    sections.append(_section("Input problems (graded and recorded; the case keeps them)",
                             [(i.path, " ".join(i.result.input_problems)) for i in s.input_problems]))
    sections.append(_section("Left out", [("", text) for text in s.skipped]))
    notes = [(i.path, note) for i in s.items for note in i.notes]
    sections.append(_section("Notes", notes))
    return "".join(x for x in sections if x)


def _section(title: str, rows: list[tuple[str, str | None]]) -> str:
    if not rows:
        return ""
    lines = [f"<b>{html.escape(Path(p).name)}</b>: {html.escape(why or '')}" if p else html.escape(why or '')
             for p, why in rows[:SHOWN_PER_LIST]]
    if len(rows) > SHOWN_PER_LIST:
        lines.append(f"\u2026 and {len(rows) - SHOWN_PER_LIST} more")
    return f"<p><b>{html.escape(title)}</b><br>{'<br>'.join(lines)}</p>"


class BatchBar(QFrame):
    """Hidden until a batch starts; then the progress, then the summary until closed."""

    cancel_requested = Signal()
    csv_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("batchBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel("")
        self.title.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(10)
        self.count = QLabel("")
        self.count.setObjectName("muted")
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.details.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the images being graded now; every graded one stays in the case log")
        self.csv_button = QPushButton("Save CSV\u2026")
        self.csv_button.setToolTip("The rows `cataract-grade predict --csv` writes for these files")
        self.close_button = QPushButton("Close")
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        for b in (self.cancel_button, self.csv_button, self.close_button):
            top.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.count)
        layout.addWidget(self.details)
        self.cancel_button.clicked.connect(self._cancel)
        self.csv_button.clicked.connect(self.csv_requested)
        self.close_button.clicked.connect(self.hide)
        self.hide()

    def start(self, total: int, skipped: int = 0) -> None:
        self.title.setText(f"<b>Grading {total} photograph{'s' if total != 1 else ''}</b>"
                           + (f" ({skipped} left out)" if skipped else ""))
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(0)
        self.bar.show()
        self.count.setText("starting\u2026")
        self.details.hide()
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.cancel_button.show()
        self.csv_button.hide()
        self.close_button.hide()
        self.show()

    def show_progress(self, p: BatchProgress) -> None:
        self.bar.setValue(p.done)
        self.count.setText(progress_text(p))

    def show_summary(self, s: BatchSummary) -> None:
        self.title.setText(f"<b>{html.escape(summary_headline(s))}</b>")
        self.bar.setVisible(bool(s.items) and s.cancelled)  # where a cancel stopped it
        text = summary_html(s)
        self.details.setText(text)
        self.details.setVisible(bool(text))
        self.cancel_button.hide()
        self.csv_button.setVisible(bool(s.items))
        self.close_button.show()

    def _cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling\u2026")
        self.cancel_requested.emit()
