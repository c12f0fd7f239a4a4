"""Short background work of the retrain panel (dataset checks, evaluations) on a pool thread.

Each call gets a token per key; a newer call with the same key makes older answers stale,
so a slow check of a folder the user has since changed never reaches the screen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from cataract_app.errors import user_message


class _Signals(QObject):
    done = Signal(int, object)
    failed = Signal(int, str)


class _Task(QRunnable):
    def __init__(self, token: int, fn: Callable[[], Any], signals: _Signals) -> None:
        super().__init__()
        self.token, self.fn, self.signals = token, fn, signals

    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as e:  # noqa: BLE001  (every failure must reach the user)
            self.signals.failed.emit(self.token, user_message(e))
        else:
            self.signals.done.emit(self.token, result)


class TaskRunner(QObject):
    """Runs callables off the GUI thread and calls back on it; only the newest call per key answers."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)  # two cores: one background job at a time besides training
        self._signals = _Signals(self)
        self._signals.done.connect(self._on_done)
        self._signals.failed.connect(self._on_failed)
        self._next = 0
        self._latest: dict[str, int] = {}
        self._callbacks: dict[int, tuple[str, Callable, Callable]] = {}

    def run(self, key: str, fn: Callable[[], Any], on_done: Callable[[Any], None], on_fail: Callable[[str], None]) -> None:
        self._next += 1
        self._latest[key] = self._next
        self._callbacks[self._next] = (key, on_done, on_fail)
        self._pool.start(_Task(self._next, fn, self._signals))

    def busy(self, key: str) -> bool:
        token = self._latest.get(key)
        return token is not None and token in self._callbacks

    def cancel(self, key: str) -> None:
        """Forget the pending call of `key`: its answer will be dropped."""
        self._latest.pop(key, None)

    def wait(self, timeout_ms: int = -1) -> bool:
        return self._pool.waitForDone(timeout_ms)

    def _take(self, token: int) -> tuple[Callable, Callable] | None:
        key, on_done, on_fail = self._callbacks.pop(token, (None, None, None))
        if key is None or self._latest.get(key) != token:
            return None
        del self._latest[key]
        return on_done, on_fail

    def _on_done(self, token: int, result: Any) -> None:
        callbacks = self._take(token)
        if callbacks:
            callbacks[0](result)

    def _on_failed(self, token: int, message: str) -> None:
        callbacks = self._take(token)
        if callbacks:
            callbacks[1](message)
