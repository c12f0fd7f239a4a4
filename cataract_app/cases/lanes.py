"""Case-log work off the GUI thread: a lane is one thread with its own connection, jobs run in order.

The window has two lanes over the same file: the writer (hashing, recording, reviews, edits)
and the reader (table pages, counts, opening a case). SQLite's WAL mode lets the reader's
connection read while the writer's waits for the write lock (another program may hold it),
so the table never waits on a write. The writer opens the log first (migrations, a damaged
file set aside); the reader connects once that is done. Answers come back on the GUI thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from cataract_app.errors import user_message
from engine.cases import CaseLog, CaseLogError

OPEN_WAIT_S = 120.0
Job = Callable[[CaseLog], Any]


class Lane(QObject):
    """One worker thread holding one CaseLog; `submit` runs a job on it and calls back on the GUI thread."""

    opened = Signal(tuple)  # the log's notices, once it is open
    open_failed = Signal(str)  # why the log cannot be used
    _done = Signal(int, object)
    _failed = Signal(int, str)

    def __init__(self, opener: Callable[[], CaseLog], name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._opener = opener
        self._log: CaseLog | None = None
        self.error: str | None = None
        self.ready = threading.Event()  # set once the log is open, or cannot be
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._next = 0
        self._callbacks: dict[int, tuple[Callable | None, Callable | None]] = {}
        self._done.connect(self._on_done)
        self._failed.connect(self._on_failed)
        self._closed = False

    @property
    def pending(self) -> int:
        """Jobs submitted whose answer has not reached the GUI thread yet."""
        return len(self._callbacks)

    @property
    def log(self) -> CaseLog | None:
        return self._log

    def start(self) -> None:
        """Open the log on the lane's thread now rather than at the first job."""
        self._pool.submit(self._ensure_open)

    def submit(self, job: Job, on_done: Callable[[Any], None] | None = None,
               on_fail: Callable[[str], None] | None = None) -> int:
        if self._closed:
            return 0
        self._next += 1
        token = self._next
        self._callbacks[token] = (on_done, on_fail)
        self._pool.submit(self._run, token, job)
        return token

    def close(self) -> None:
        """Finish the jobs already submitted (a review must not be lost), then close the connection."""
        self._closed = True
        self._pool.shutdown(wait=True)
        if self._log is not None:
            self._log.close()
            self._log = None

    # ---- on the lane's thread -------------------------------------------------------------------
    def _ensure_open(self) -> CaseLog:
        if self._log is None and self.error is None:
            try:
                self._log = self._opener()
            except Exception as e:  # noqa: BLE001  (a log that cannot be used must be said, not crash the lane)
                self.error = user_message(e)
                self.open_failed.emit(self.error)
            else:
                self.opened.emit(tuple(self._log.notices))
            finally:
                self.ready.set()
        if self._log is None:
            raise CaseLogError(f"the case log cannot be used: {self.error}")
        return self._log

    def _run(self, token: int, job: Job) -> None:
        try:
            result = job(self._ensure_open())
        except Exception as e:  # noqa: BLE001  (every failure must reach the user)
            self._failed.emit(token, user_message(e))
        else:
            self._done.emit(token, result)

    # ---- on the GUI thread ----------------------------------------------------------------------
    def _on_done(self, token: int, result: Any) -> None:
        on_done, _ = self._callbacks.pop(token, (None, None))
        if on_done is not None:
            on_done(result)

    def _on_failed(self, token: int, message: str) -> None:
        _, on_fail = self._callbacks.pop(token, (None, None))
        if on_fail is not None:
            on_fail(message)


def writer_opener(path: Path, user: str | None = None) -> Callable[[], CaseLog]:
    return lambda: CaseLog.open(path, user=user)


def reader_opener(path: Path, writer: Lane, user: str | None = None) -> Callable[[], CaseLog]:
    """A second connection to the file the writer opened (no second integrity check or migration)."""

    def opener() -> CaseLog:
        from engine.cases import db

        if not writer.ready.wait(OPEN_WAIT_S):
            raise CaseLogError(f"the case database {path} took more than {OPEN_WAIT_S:.0f} s to open")
        if writer.error is not None:
            raise CaseLogError(writer.error)
        return CaseLog(db.connect(path), path, [], user)

    return opener
