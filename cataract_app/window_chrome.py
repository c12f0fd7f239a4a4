"""Window chrome: the menus and shortcuts, the bar above the image and the status line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMenu, QPushButton, QStatusBar

from cataract_app import theme
from cataract_app.viewer.navigation import position_in_folder

if TYPE_CHECKING:
    from cataract_app.main_window import MainWindow


class ImageBar(QFrame):
    """File name, its place in the folder, previous/next buttons, and the zoom and its buttons."""

    step_requested = Signal(int)
    fit_requested = Signal()
    zoom_in_requested = Signal()
    zoom_out_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("imageBar")
        self.name = QLabel("No image")
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.position = QLabel("")
        self.position.setObjectName("muted")
        self.prev_button = QPushButton("\u2039 Previous")
        self.next_button = QPushButton("Next \u203a")
        self.prev_button.setToolTip("Previous image in this folder (Left, Page Up)")
        self.next_button.setToolTip("Next image in this folder (Right, Page Down)")
        self.zoom_label = QLabel("")
        self.zoom_label.setObjectName("muted")
        self.zoom_label.setMinimumWidth(48)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        zoom_out, zoom_in, fit = QPushButton("\u2212"), QPushButton("+"), QPushButton("Fit")
        zoom_out.setToolTip("Zoom out (Ctrl+-)")
        zoom_in.setToolTip("Zoom in (Ctrl+=)")
        fit.setToolTip("Fit the image to the window (Ctrl+0)")
        for b in (zoom_out, zoom_in):
            b.setFixedWidth(32)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 8, 4)
        row.addWidget(self.name, 1)
        for w in (self.position, self.prev_button, self.next_button, self.zoom_label, zoom_out, zoom_in, fit):
            row.addWidget(w)
        self.prev_button.clicked.connect(lambda: self.step_requested.emit(-1))
        self.next_button.clicked.connect(lambda: self.step_requested.emit(1))
        fit.clicked.connect(self.fit_requested)
        zoom_in.clicked.connect(self.zoom_in_requested)
        zoom_out.clicked.connect(self.zoom_out_requested)
        self.show_path(None)

    def show_zoom(self, scale: float) -> None:
        self.zoom_label.setText(f"{scale * 100:.0f} %")

    def show_path(self, path: str | None) -> None:
        if not path:
            self.name.setText("No image")
            self.name.setToolTip("")
            self.position.setText("")
            self.prev_button.setEnabled(False)
            self.next_button.setEnabled(False)
            return
        index, count = position_in_folder(path)
        self.name.setText(f"<b>{Path(path).name}</b>")
        self.name.setToolTip(str(path))
        self.position.setText(f"{index} of {count} in folder" if index else "")
        self.prev_button.setEnabled(index > 1)
        self.next_button.setEnabled(0 < index < count)


class StatusLine:
    """The status bar: transient messages on the left, the active model and device on the right."""

    def __init__(self, bar: QStatusBar) -> None:
        self.bar = bar
        self.model = QLabel("")
        self.teacher = QLabel("")
        self.device = QLabel("")
        for label in (self.model, self.teacher, self.device):
            bar.addPermanentWidget(label)
        self.last_error = ""

    def show_model(self, model: str, device: str, teacher: str = "") -> None:
        self.model.setText(f"Model: {model}" if model else "")
        self.teacher.setText(f"Teacher: {teacher}" if teacher else "")
        self.teacher.setVisible(bool(teacher))
        self.device.setText(f"Device: {device}" if device else "")

    def message(self, text: str, timeout_ms: int = 0) -> None:
        self.bar.setStyleSheet("")
        self.bar.showMessage(text, timeout_ms)

    def error(self, text: str) -> None:
        self.last_error = text
        self.bar.setStyleSheet(f"QStatusBar {{ color: {theme.ERROR_TEXT}; }}")
        self.bar.showMessage(text)


def _action(window: MainWindow, text: str, slot, keys=(), tip: str = "") -> QAction:
    action = QAction(text, window)
    if keys:
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    if tip:
        action.setStatusTip(tip)
    action.triggered.connect(slot)
    window.addAction(action)  # shortcuts work even when the menu bar is hidden
    return action


def build_menus(window: MainWindow) -> dict[str, QAction]:
    """File, View, Training and Help menus; returns the actions by name for tests and callers."""
    k = QKeySequence.StandardKey
    acts = {
        "open": _action(window, "&Open image\u2026", window.open_dialog, (k.Open,), "Open a photograph"),
        "next": _action(window, "&Next image", lambda: window.step(1), ("Right", "PgDown")),
        "previous": _action(window, "&Previous image", lambda: window.step(-1), ("Left", "PgUp")),
        "quit": _action(window, "&Quit", window.close, (k.Quit, "Ctrl+Q")),
        "zoom_in": _action(window, "Zoom &in", window.view.zoom_in, ("Ctrl+=", "Ctrl++", k.ZoomIn)),
        "zoom_out": _action(window, "Zoom &out", window.view.zoom_out, ("Ctrl+-", k.ZoomOut)),
        "fit": _action(window, "&Fit to window", window.view.fit_to_window, ("Ctrl+0",)),
        "actual": _action(window, "&Actual size", window.view.actual_size, ("Ctrl+1",)),
        "heatmap": _action(window, "&Heat map", lambda: window.overlay_bar.toggle.toggle(), ("H",)),
        "about": _action(window, "&About Cataract Grader", window.about),
        "retrain": _action(window, "&Retrain\u2026", window.training.open_retrain, ("Ctrl+T",),
                           "Train a new teacher or student on a labelled folder"),
        "models": _action(window, "&Models\u2026", window.training.open_models, (),
                          "See every trained model and choose the active ones"),
    }
    acts["heatmap"].setCheckable(True)
    acts["heatmap"].setChecked(True)
    window.overlay_bar.toggle.toggled.connect(acts["heatmap"].setChecked)

    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addAction(acts["open"])
    recent = QMenu("Open &recent", window)
    recent.aboutToShow.connect(lambda: _fill_recent(window, recent))
    file_menu.addMenu(recent)
    file_menu.addSeparator()
    file_menu.addActions([acts["previous"], acts["next"]])
    file_menu.addSeparator()
    file_menu.addAction(acts["quit"])
    view_menu = bar.addMenu("&View")
    view_menu.addActions([acts["zoom_in"], acts["zoom_out"], acts["fit"], acts["actual"]])
    view_menu.addSeparator()
    view_menu.addAction(acts["heatmap"])
    training_menu = bar.addMenu("&Training")
    training_menu.addActions([acts["retrain"], acts["models"]])
    bar.addMenu("&Help").addAction(acts["about"])
    acts["recent_menu"] = recent.menuAction()
    return acts


def _fill_recent(window: MainWindow, menu: QMenu) -> None:
    menu.clear()
    paths = window.recent.paths()
    for path in paths:
        menu.addAction(Path(path).name, lambda p=path: window.open_recent(p)).setToolTip(path)
    if paths:
        menu.addSeparator()
        menu.addAction("Clear list", window.recent.clear)
    else:
        menu.addAction("No recent files").setEnabled(False)
