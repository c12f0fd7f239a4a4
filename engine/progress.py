"""Progress callbacks and cancel tokens: how long jobs talk to whoever runs them.

The engine knows nothing of Qt. A GUI adapts these to signals; the CLI prints
them as JSON lines.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

ProgressCallback = Callable[[dict[str, Any]], None]


class Cancelled(Exception):
    """Raised inside a job when its cancel token was set."""


class CancelToken:
    """A thread-safe flag a job polls between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("the job was stopped")


def no_progress(_event: dict[str, Any]) -> None:
    """The default callback: ignore events."""
