"""The compare step: a new bundle's metrics and confusion matrix beside the active model's, same images."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from cataract_app import theme
from engine.schema import NUM_GRADES

# key, label, higher is better, format
METRICS = (
    ("n", "Validation images", None, "{:.0f}"),
    ("acc", "Accuracy", True, "{:.1%}"),
    ("qwk", "Quadratic weighted kappa", True, "{:.3f}"),
    ("mae", "Mean absolute error (grades)", False, "{:.2f}"),
    ("within1", "Within one grade", True, "{:.1%}"),
    ("ece", "Calibration error", False, "{:.3f}"),
)


def evaluate_pair(candidate: Path, active: Path | None, dataset: Path, device: str = "auto", batch_size: int = 32) -> dict:
    """Both bundles scored on the candidate's validation split; the active side may hold an error sentence."""
    from cataract_app.errors import user_message
    from engine.bundle import read_card
    from engine.evaluation import evaluate_on_split

    card = read_card(candidate)
    out: dict = {"new": evaluate_on_split(candidate, dataset, card, "val", device, batch_size), "active": None}
    if active is not None:
        try:
            out["active"] = evaluate_on_split(active, dataset, card, "val", device, batch_size)
        except Exception as e:  # noqa: BLE001  (shown in the active column; the candidate still counts)
            out["active"] = user_message(e)
    return out


class ConfusionGrid(QWidget):
    """8 x 8 counts, rows the true grade, columns the predicted one; shaded by each row's share."""

    def __init__(self, title: str, parent=None) -> None:
        super().__init__(parent)
        self.title = title
        self.matrix: list[list[int]] = []
        self.setMinimumSize(250, 290)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(290, 300)

    def set_matrix(self, matrix: list[list[int]] | None, title: str | None = None) -> None:
        self.matrix = [list(r) for r in (matrix or [])]
        if title is not None:
            self.title = title
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt override)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        n, left, top, bottom = NUM_GRADES, 24, 40, 20
        cell = max(8.0, min((self.width() - left - 4) / n, (self.height() - top - bottom) / n))
        centre = Qt.AlignmentFlag.AlignCenter
        p.setPen(QColor(theme.TEXT))
        p.drawText(QRectF(0, 0, self.width(), 18), Qt.AlignmentFlag.AlignLeft, self.title)
        p.setPen(QColor(theme.MUTED))
        for j in range(n):
            p.drawText(QRectF(left + j * cell, 20, cell, 18), centre, str(j))
        p.drawText(QRectF(0, top + n * cell + 2, left + n * cell, 16), centre,
                   "rows: true grade · columns: predicted")
        for i in range(n):
            p.setPen(QColor(theme.MUTED))
            p.drawText(QRectF(0, top + i * cell, left - 6, cell), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, str(i))
            row = self.matrix[i] if i < len(self.matrix) else [0] * n
            for j in range(n):
                self._cell(p, QRectF(left + j * cell, top + i * cell, cell - 2, cell - 2), row, j, i == j)
        p.end()

    @staticmethod
    def _cell(p: QPainter, rect: QRectF, row: list[int], j: int, diagonal: bool) -> None:
        count = row[j] if j < len(row) else 0
        share = count / (sum(row) or 1)
        accent = QColor(theme.ACCENT)
        base = QColor("#e9f0f4") if diagonal else QColor("#f6f7f9")  # the diagonal (correct) cells stand out
        color = QColor(*(round(b + (a - b) * share) for a, b in zip(accent.getRgb()[:3], base.getRgb()[:3])))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(color)
        p.drawRoundedRect(rect, 2, 2)
        if count:
            p.setPen(QColor("#ffffff" if share > 0.5 else theme.TEXT))
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, str(count))


def _model_title(result: dict | str | None, label: str) -> str:
    if isinstance(result, dict):
        return f"{label}\n{result.get('name', '')}\n{result.get('model_id', '')}"
    return f"{label}\n(none)"


class ComparePane(QWidget):
    """One role: rows of metrics for the active and the new model, a change column, two confusion grids."""

    def __init__(self, role: str, parent=None) -> None:
        super().__init__(parent)
        self.role = role
        self.results: dict = {}
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setObjectName("muted")
        self.table = QGridLayout()
        self.table.setHorizontalSpacing(18)
        self.table.setVerticalSpacing(4)
        self.cells: dict[tuple[str, str], QLabel] = {}
        heads = {"active": QLabel(f"Active {role}"), "new": QLabel(f"New {role}"), "change": QLabel("Change")}
        self.heads = heads
        for col, key in enumerate(("active", "new", "change"), start=1):
            heads[key].setStyleSheet("font-weight: 600;")
            self.table.addWidget(heads[key], 0, col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom)
        for row, (key, label, _better, _fmt) in enumerate(METRICS, start=1):
            self.table.addWidget(QLabel(label), row, 0)
            for col, side in enumerate(("active", "new", "change"), start=1):
                cell = QLabel("\u2013")
                cell.setAlignment(Qt.AlignmentFlag.AlignRight)
                self.cells[(key, side)] = cell
                self.table.addWidget(cell, row, col)
        self.table.setColumnStretch(0, 1)
        self.active_grid, self.new_grid = ConfusionGrid(f"Active {role}"), ConfusionGrid(f"New {role}")
        grids = QHBoxLayout()
        grids.addWidget(self.active_grid)
        grids.addWidget(self.new_grid)
        grids.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addLayout(self.table)
        layout.addSpacing(6)
        layout.addLayout(grids)
        layout.addStretch(1)

    def set_busy(self, text: str) -> None:
        self.note.setText(text)

    def set_results(self, results: dict) -> None:
        """Fill from evaluate_pair(): {'new': metrics, 'active': metrics | error sentence | None}."""
        self.results = results
        new, active = results.get("new"), results.get("active")
        self.heads["active"].setText(_model_title(active if isinstance(active, dict) else None, f"Active {self.role}"))
        self.heads["new"].setText(_model_title(new, f"New {self.role}"))
        split = new.get("split_config", {}) if isinstance(new, dict) else {}
        note = (f"Both models scored on the same {new.get('n', 0)} validation images of the new model's split "
                f"(split seed {split.get('seed', 0)}, {split.get('val_frac', 0.15):.0%} of the patients).")
        if isinstance(active, str):
            note += f" The active {self.role} could not be scored: {active}"
        elif active is None:
            note += f" There is no active {self.role} to compare with."
        self.note.setText(note)
        for key, _label, better, fmt in METRICS:
            a = active.get(key) if isinstance(active, dict) else None
            b = new.get(key) if isinstance(new, dict) else None
            self.cells[(key, "active")].setText(fmt.format(a) if isinstance(a, (int, float)) else "\u2013")
            self.cells[(key, "new")].setText(fmt.format(b) if isinstance(b, (int, float)) else "\u2013")
            self._set_change(self.cells[(key, "change")], a, b, better, fmt)
        self.active_grid.set_matrix(active.get("confusion") if isinstance(active, dict) else None)
        self.new_grid.set_matrix(new.get("confusion") if isinstance(new, dict) else None)

    @staticmethod
    def _set_change(cell: QLabel, a, b, better: bool | None, fmt: str) -> None:
        if better is None or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            cell.setText("")
            return
        delta = b - a
        text = fmt.format(abs(delta))
        same = text == fmt.format(0.0)  # no change at the precision shown
        cell.setText(("\u00b1" if same else "+" if delta > 0 else "\u2212") + text)
        good = (delta > 0) == better
        color = theme.MUTED if same else ("#1e7b34" if good else theme.ERROR_TEXT)
        cell.setStyleSheet(f"color: {color}; font-weight: 600;")

    def value(self, side: str, key: str):
        """A shown metric (for callers and tests): side 'new' or 'active'."""
        result = self.results.get(side)
        return result.get(key) if isinstance(result, dict) else None
