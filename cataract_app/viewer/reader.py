"""Read image files on a thread pool so that opening a large photograph never blocks the window."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from cataract_app.errors import user_message


class _ReadSignals(QObject):
    loaded = Signal(int, str, object)  # token, path, RGB uint8 array
    failed = Signal(int, str, str)  # token, path, message
    finished = Signal(int)


class _ReadTask(QRunnable):
    def __init__(self, token: int, path: str, signals: _ReadSignals) -> None:
        super().__init__()
        self.token, self.path, self.signals = token, path, signals

    def run(self) -> None:
        try:
            from engine.io import read_image

            rgb = read_image(self.path)
            self.signals.loaded.emit(self.token, self.path, rgb)
        except Exception as e:  # noqa: BLE001  (every failure must reach the user)
            self.signals.failed.emit(self.token, self.path, user_message(e))
        finally:
            self.signals.finished.emit(self.token)


class ImageReader(QObject):
    """Reads one file at a time from the window's point of view: only the newest read reports."""

    loaded = Signal(int, str, object)
    failed = Signal(int, str, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._token = 0
        self._signals = _ReadSignals(self)
        self._signals.loaded.connect(self._on_loaded)
        self._signals.failed.connect(self._on_failed)
        self.pending = 0
        self._signals.finished.connect(self._on_finished)

    def read(self, path: str | Path) -> int:
        """Start reading `path`; earlier reads still running will be ignored."""
        self._token += 1
        self.pending += 1
        self._pool.start(_ReadTask(self._token, str(path), self._signals))
        return self._token

    def shutdown(self) -> None:
        self._token += 1
        self._pool.waitForDone()

    def _on_loaded(self, token: int, path: str, rgb) -> None:
        if token == self._token:
            self.loaded.emit(token, path, rgb)

    def _on_failed(self, token: int, path: str, message: str) -> None:
        if token == self._token:
            self.failed.emit(token, path, message)

    def _on_finished(self, _token: int) -> None:
        self.pending -= 1
