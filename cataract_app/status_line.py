"""The status bar: passing messages on the left, the active model and device on the right."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QStatusBar

from cataract_app import theme


class StatusLine:
    """Wraps the window's QStatusBar; remembers the last error for callers and tests."""

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
