"""The bar above the image: file name, its place in the folder, previous/next, and the zoom with its buttons."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton

from cataract_app.viewer.navigation import position_in_folder


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
