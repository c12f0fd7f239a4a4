"""The Models dialog: every bundle in the store and the shipped defaults, which are active, and switching.

Making a model active always asks first; "Switch back" returns a role to the model that was
active before its last change. Both go through the TrainingController, which reloads the Grader.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
)

from cataract_app import theme

COLUMNS = ("", "Role", "Name", "Architecture", "Created", "Val. accuracy", "Val. QWK", "Model id", "Notice")
ACTIVE_MARK = "\u2605 active"


def _metric(card, key: str, percent: bool = False) -> str:
    value = (card.metrics.get("val") or {}).get(key) if isinstance(card.metrics, dict) else None
    if not isinstance(value, (int, float)):
        return "\u2013"
    return f"{value:.1%}" if percent else f"{value:.3f}"


def _architecture(card) -> str:
    backbone = card.arch_config.get("backbone") or card.arch
    return f"{backbone}, {card.fusion} fusion" if card.fusion else backbone


def describe_card(path: Path, card, default: bool) -> str:
    """The card in a few lines of HTML for the details pane."""
    rows = [
        ("Folder", f"{path}{' (shipped default)' if default else ''}"),
        ("Model", f"{card.name}: {card.role}, {_architecture(card)} at {card.image_size} px"),
        ("Created", card.created),
        ("Distilled from", f"{card.teacher.get('name')} ({card.teacher.get('model_id')})" if card.teacher else "\u2013"),
        ("Best epoch", str(card.epochs)),
        ("Training data", card.data_fingerprint or "\u2013"),
    ]
    for split in ("val", "test"):
        m = card.metrics.get(split) if isinstance(card.metrics, dict) else None
        if isinstance(m, dict) and "acc" in m:
            rows.append((f"{split.capitalize()} split", f"accuracy {m['acc']:.1%}, QWK {m.get('qwk', 0):.3f}, "
                                                        f"MAE {m.get('mae', 0):.2f}, n = {m.get('n', '?')}"))
    body = "".join(f"<tr><td style='color:{theme.MUTED}; padding-right:10px'>{html.escape(k)}</td>"
                   f"<td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    notice = f"<p style='color:{theme.WARN_TEXT}'><b>{html.escape(card.notice)}</b></p>" if card.notice else ""
    return f"<table>{body}</table>{notice}"


class ModelsDialog(QDialog):
    """A table of bundles with their cards; Make active and Switch back."""

    def __init__(self, controller, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setWindowTitle("Models")
        self.rows: list[tuple[Path, object]] = []
        self.problems = QLabel("")
        self.problems.setObjectName("error")
        self.problems.setWordWrap(True)
        self.problems.hide()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COLUMNS.index("Notice"), QHeaderView.ResizeMode.Stretch)
        self.details = QTextBrowser()
        self.details.setMaximumHeight(170)
        self.make_active = QPushButton("Make active\u2026")
        self.make_active.setObjectName("primary")
        self.switch_back = QPushButton("Switch back")
        self.switch_back.setToolTip("Return this role to the model that was active before its last change")
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.store_label = QLabel("")
        self.store_label.setObjectName("muted")
        self.store_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QHBoxLayout()
        buttons.addWidget(self.make_active)
        buttons.addWidget(self.switch_back)
        buttons.addWidget(self.note, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.problems)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        layout.addLayout(buttons)
        layout.addWidget(self.store_label)
        self.resize(1200, 560)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.make_active.clicked.connect(self.activate_selected)
        self.switch_back.clicked.connect(self.switch_back_selected)

    def refresh(self) -> None:
        """Re-read the store: bundles, active markers, problems."""
        store = self.controller.store
        problems = store.problems()
        self.problems.setText("\n".join(problems))
        self.problems.setVisible(bool(problems))
        self.store_label.setText(f"Model store: {store.root}")
        active = {r: self.controller.current_bundle(r) for r in ("student", "teacher")}
        active_paths = {p.resolve() for p in active.values() if p is not None}
        selected = self.selected_path()
        self.rows = store.list_bundles()
        self.table.setRowCount(len(self.rows))
        for i, (path, card) in enumerate(self.rows):
            is_active = path.resolve() in active_paths
            values = (ACTIVE_MARK if is_active else "", card.role, card.name, _architecture(card),
                      card.created[:16].replace("T", " "),
                      _metric(card, "acc", True), _metric(card, "qwk"), card.model_id, card.notice or "")
            for j, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setToolTip(str(path))
                if is_active:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(i, j, item)
            if selected is not None and path.resolve() == selected.resolve():
                self.table.selectRow(i)
        if not self.table.selectedItems() and self.rows:
            self.table.selectRow(0)
        self._on_selection()

    def selected_path(self) -> Path | None:
        row = self.table.currentRow()
        return self.rows[row][0] if 0 <= row < len(self.rows) and self.table.selectedItems() else None

    def select_bundle(self, path: Path) -> bool:
        for i, (p, _c) in enumerate(self.rows):
            if p.resolve() == Path(path).resolve():
                self.table.selectRow(i)
                return True
        return False

    def is_active_row(self, row: int) -> bool:
        return self.table.item(row, 0).text() == ACTIVE_MARK

    def _on_selection(self) -> None:
        row = self.table.currentRow()
        if not (0 <= row < len(self.rows)) or not self.table.selectedItems():
            self.details.setHtml("")
            self.make_active.setEnabled(False)
            self.switch_back.setEnabled(False)
            return
        path, card = self.rows[row]
        self.details.setHtml(describe_card(path, card, self.controller.store.is_default(path)))
        self.make_active.setEnabled(not self.is_active_row(row))
        self.switch_back.setEnabled(any(h.get("role") == card.role for h in self.controller.store.history()))
        self.switch_back.setText(f"Switch {card.role} back")

    def activate_selected(self) -> bool:
        path = self.selected_path()
        if path is None:
            return False
        card = dict(self.rows)[path]
        if not self.controller.ask("Make this model active?",
                                   f"Grade with {card.name} ({card.model_id}) as the active {card.role} from now on?"):
            return False
        try:
            self.controller.promote(path)
        except ValueError as e:
            self._say(str(e), error=True)
            return False
        self._say(f"{card.name} is now the active {card.role}.")
        return True

    def switch_back_selected(self) -> bool:
        path = self.selected_path()
        if path is None:
            return False
        role = dict(self.rows)[path].role
        try:
            self.controller.revert(role)
        except ValueError as e:
            self._say(str(e), error=True)
            return False
        self._say(f"The {role} was switched back.")
        return True

    def _say(self, text: str, error: bool = False) -> None:
        color = theme.ERROR_TEXT if error else theme.TEXT
        self.note.setText(f"<span style='color:{color}'>{html.escape(text)}</span>")
