"""The session's case backend: every case-log request goes to a lane, every answer back to the session.

The file is the CLI's: CATARACT_GRADER_CASES_DB, else cases.sqlite3 in the model store's
folder (the app's store, so the two never drift apart). Hashing happens on the writer's
thread when an image is opened, while the model grades it; the record that follows reuses
that hash (`CaseLog.record(..., image_sha256=...)`), so recording costs the GUI nothing.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from cataract_app.cases import jobs
from cataract_app.cases.lanes import Lane, reader_opener, writer_opener
from engine.cases import DB_ENV, Case
from engine.cases.db import DB_FILE
from engine.results import GradeResult

HASHES_KEPT = 32


def app_db_path(store_root: str | Path) -> Path:
    """The case log the app uses by default: CATARACT_GRADER_CASES_DB, else cases.sqlite3 beside the store."""
    env = os.environ.get(DB_ENV, "").strip()
    return Path(env).expanduser() if env else Path(store_root) / DB_FILE


class CaseService(QObject):
    """Implements cataract_app.session.CaseBackend over two lanes; `read` serves the panels."""

    saved = Signal(object)  # Case: written (recorded, reviewed, edited); the table refreshes
    notice = Signal(str)  # a sentence for the status bar (a damaged file set aside)
    unavailable = Signal(str)  # the log cannot be used; grading goes on without recording

    def __init__(self, path: str | Path, user: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path).expanduser()
        self.session = None  # set by bind(); answers go there
        self.writer = Lane(writer_opener(self.path, user), "cases-write", self)
        self.reader = Lane(reader_opener(self.path, self.writer, user), "cases-read", self)
        self.writer.opened.connect(lambda notices: [self.notice.emit(n) for n in notices])
        self.writer.open_failed.connect(self.unavailable)
        self._hashes: OrderedDict[str, str] = OrderedDict()  # path -> SHA-256; touched on the writer's thread only
        self.writer.start()

    @property
    def error(self) -> str | None:
        """Why the log cannot be used, once opening it failed."""
        return self.writer.error

    def bind(self, session) -> None:
        self.session = session

    def read(self, job, on_done, on_fail=None) -> int:
        """Run `job(log)` on the reader's connection; the panels page and open cases through this."""
        return self.reader.submit(job, on_done, on_fail or self._fail)

    def shutdown(self) -> None:
        self.reader.close()
        self.writer.close()

    def wait_idle(self) -> bool:
        """True when no job is pending on either lane (for tests and unattended runs)."""
        return self.writer.pending == 0 and self.reader.pending == 0

    # ---- CaseBackend --------------------------------------------------------------------------------
    def lookup(self, path: str) -> None:
        if self.error is None:  # a log that cannot be used was said once; grading goes on without it
            self.writer.submit(lambda log: self._lookup(log, path), lambda found: self.session.case_found(path, found),
                               lambda _message: None)  # an unreadable file is said by the image reader

    def record(self, path: str, result: GradeResult, sublabels: Mapping[str, int | None] | None,
               gate: Mapping[str, Any] | None = None) -> None:
        if self.error is None:
            subs = None if sublabels is None else dict(sublabels)
            given = None if gate is None else dict(gate)
            self._write(lambda log: jobs.record_answer(log, path, result, self._hashes.get(path), subs, given), path)

    def review(self, case_id: int, grade: int | None, note: str | None) -> None:
        self._write(lambda log: jobs.review(log, case_id, grade, note))

    def reopen(self, case_id: int) -> None:
        self._write(lambda log: log.reopen(case_id))

    def set_details(self, case_id: int, details: Mapping[str, str | None]) -> None:
        given = dict(details)
        self._write(lambda log: log.set_details(case_id, **given))

    def next_case(self, skip: tuple[int, ...]) -> None:
        self.read(lambda log: jobs.next_case(log, skip), self._next_answered)

    def open_case(self, case_id: int) -> None:
        """Show a case of the log in the grading view (the Cases panel asks)."""
        self.read(lambda log: jobs.load(log, case_id), lambda loaded: self.session.open_case(*loaded))

    # ---- answers --------------------------------------------------------------------------------------
    def _lookup(self, log, path: str) -> Case | None:
        sha, case = jobs.lookup(log, path)
        self._hashes[path] = sha
        self._hashes.move_to_end(path)
        while len(self._hashes) > HASHES_KEPT:
            self._hashes.popitem(last=False)
        return case

    def _write(self, job, path: str | None = None) -> int:
        return self.writer.submit(job, lambda case: self._saved(path, case), self._fail)

    def _saved(self, path: str | None, case: Case) -> None:
        if self.session is not None:
            self.session.case_saved(path, case)
        self.saved.emit(case)

    def _next_answered(self, loaded: Any) -> None:
        if loaded is None:
            self.session.no_case_left()
        else:
            self.session.open_case(*loaded)

    def _fail(self, message: str) -> None:
        if self.session is not None:
            self.session.case_error(message)
