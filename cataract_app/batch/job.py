"""A batch off the GUI thread: `engine.batch.grade_batch` over the files, each result recorded in the case log.

`run_batch` is plain Python: it grades the files in chunks, taking the window's Grader lock for
one chunk at a time, so an image opened meanwhile is graded between two chunks instead of after
the whole batch. Each chunk is one `grade_batch` call with the case log, so the grades, the CSV
rows and the cases are those of `cataract-grade predict --dir` and `cases add`. `BatchJob` runs
it on a thread and turns items and progress into Qt signals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from PySide6.QtCore import QObject, Signal

from cataract_app.errors import AppError, user_message
from engine.batch import BatchItem, BatchProgress, grade_batch
from engine.progress import CancelToken

CHUNK = 24  # files graded per hold of the Grader lock
BATCH_SIZE = 8  # images per forward pass: a cancel waits for at most one
JOIN_S = 30.0


@dataclass
class BatchSummary:
    """What a finished (or cancelled) batch did: every item, and the files set aside before it started."""

    total: int
    items: list[BatchItem] = field(default_factory=list)
    skipped: tuple[str, ...] = ()  # sentences: dropped things that are not images
    cancelled: bool = False
    error: str | None = None  # the batch could not run at all (no model, no case log)
    elapsed_s: float = 0.0

    @property
    def graded(self) -> list[BatchItem]:
        return [i for i in self.items if i.result is not None]

    @property
    def recorded(self) -> list[BatchItem]:
        return [i for i in self.items if i.case is not None]

    @property
    def failed(self) -> list[BatchItem]:
        """Files without a grade (unreadable, refused); `error` says why."""
        return [i for i in self.items if i.result is None]

    @property
    def not_recorded(self) -> list[BatchItem]:
        """Graded, but the case log refused the record (another patient's case, ...)."""
        return [i for i in self.items if i.result is not None and i.case is None]

    @property
    def input_problems(self) -> list[BatchItem]:
        """Graded although the input gate found problems (the case keeps its sentences)."""
        return [i for i in self.items if i.result is not None and i.result.input_ok is False]

    @property
    def not_reached(self) -> int:
        """Files a cancel left ungraded."""
        return self.total - len(self.items)


def run_batch(files: Sequence[str], grader_of: Callable[[], object], lock: threading.Lock, open_log: Callable,
              cancel: CancelToken, on_item: Callable[[BatchItem], None], on_progress: Callable[[BatchProgress], None],
              chunk: int = CHUNK, batch_size: int = BATCH_SIZE,
              details: Mapping[str, str | None] | None = None) -> BatchSummary:
    """Grade `files` into the case log `open_log()` returns (a connection of this thread); never raises.

    `details` (patient_id, eye, visit_date) go with every case; blank ones are a DICOM's own.
    """
    summary, start = BatchSummary(len(files)), time.perf_counter()
    failed = 0
    on_progress(BatchProgress(0, len(files), 0, 0.0))
    log = None
    try:
        log = open_log()
        for offset in range(0, len(files), chunk):
            if cancel.cancelled:
                break
            with lock:  # an image opened meanwhile is graded between two chunks
                grader = grader_of()
                if grader is None:
                    raise AppError("no model is loaded, so nothing can be graded")
                request = grader.request(cam=False)  # what predict --dir and cases add ask
                for item in grade_batch(grader, files[offset:offset + chunk], request, log=log, details=details,
                                        cancel=cancel, batch_size=batch_size):
                    item = replace(item, index=item.index + offset)
                    summary.items.append(item)
                    failed += not item.ok
                    on_item(item)
                    on_progress(BatchProgress(len(summary.items), len(files), failed, time.perf_counter() - start))
    except Exception as e:  # noqa: BLE001  (the user sees why the batch stopped; what was graded is kept)
        summary.error = user_message(e)
    finally:
        if log is not None:
            log.close()
    summary.cancelled = cancel.cancelled and len(summary.items) < len(files)
    summary.elapsed_s = time.perf_counter() - start
    on_progress(BatchProgress(len(summary.items), len(files), failed, summary.elapsed_s,
                              cancelled=summary.cancelled, finished=True))
    return summary


class BatchJob(QObject):
    """One batch on its own thread; `item_done`, `progressed` and `finished` arrive on the GUI thread."""

    item_done = Signal(object)  # BatchItem, its case already committed
    progressed = Signal(object)  # BatchProgress
    finished = Signal(object)  # BatchSummary

    def __init__(self, files: Sequence[str], grader_of: Callable[[], object], lock: threading.Lock,
                 open_log: Callable, skipped: tuple[str, ...] = (), parent: QObject | None = None,
                 details: Mapping[str, str | None] | None = None) -> None:
        super().__init__(parent)
        self.files, self.skipped, self.details = tuple(files), skipped, dict(details or {})
        self.cancel_token = CancelToken()
        self._args = (grader_of, lock, open_log)
        self._thread: threading.Thread | None = None
        self.summary: BatchSummary | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="batch-grading", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Stop after the forward pass that runs now; every file graded so far stays in the case log."""
        self.cancel_token.cancel()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float = JOIN_S) -> bool:
        """Block until the thread ended (on close, after cancel); False when it did not within `timeout`."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def _run(self) -> None:
        grader_of, lock, open_log = self._args
        summary = run_batch(self.files, grader_of, lock, open_log, self.cancel_token, self.item_done.emit,
                            self.progressed.emit, details=self.details)
        summary.skipped = self.skipped
        self.summary = summary
        self.finished.emit(summary)
