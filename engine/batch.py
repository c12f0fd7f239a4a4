"""Grade many files: the one path that `predict`, `cases add` and the app's batch grading share.

`grade_batch` yields one `BatchItem` per file in input order (decoding overlaps the compute,
as in `Grader.grade_files`), each with its CSV row (`GradeResult.csv_row`, or an error row),
and, given a case log, the case it was recorded in as it arrives. A cancel token stops it
between files; a progress callback gets the counts an ETA needs. An unreadable file, or one
the log refuses, is an item with an error and never stops the batch.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from engine.dicom import case_details
from engine.progress import CancelToken
from engine.results import GATE_CSV_COLUMNS, GradeResult
from engine.schema import GRADES

if TYPE_CHECKING:
    from engine.cases import Case, CaseLog
    from engine.infer import Grader
    from engine.request import GradeRequest

DETAIL_KEYS = ("patient_id", "eye", "visit_date")


@dataclass(frozen=True)
class BatchProgress:
    """Where a batch stands: counts and time for a progress bar and an ETA."""

    done: int  # files answered so far (graded or failed)
    total: int
    failed: int
    elapsed_s: float
    cancelled: bool = False
    finished: bool = False  # the last event of a batch (also when cancelled)

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far; None before the first file is done."""
        if self.done == 0:
            return None
        return self.elapsed_s / self.done * (self.total - self.done)


@dataclass(frozen=True)
class BatchItem:
    """One file of a batch: its result or why it has none, its CSV row, and its case when recorded."""

    index: int
    path: str
    result: GradeResult | None
    error: str | None
    row: dict[str, object]
    case: Case | None = None
    notes: tuple[str, ...] = ()  # sentences for the user (a DICOM's first of N frames, details it disagreed with)

    @property
    def ok(self) -> bool:
        return self.error is None


ProgressFn = Callable[[BatchProgress], None]


def csv_header(schema_names: tuple[str, ...]) -> list[str]:
    """The CSV columns of a batch: file, grade, confidence, p0-p7, pred_<sub-label>..., model_id, the input
    gate's columns (GATE_CSV_COLUMNS: input_ok, input_problems, lens_cx, lens_cy, lens_r, lens_source, ood_score), error."""
    return ["file", "grade", "confidence", *[f"p{k}" for k in GRADES], *[f"pred_{n}" for n in schema_names],
            "model_id", *GATE_CSV_COLUMNS, "error"]


def csv_text(rows: Iterable[Mapping[str, object]], schema_names: tuple[str, ...]) -> str:
    """The CSV file of a batch's rows (what `predict --csv` and the app's export write)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=csv_header(schema_names), restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def grade_batch(
    grader: Grader,
    paths: Iterable[str | Path],
    request: GradeRequest | None = None,
    *,
    log: CaseLog | None = None,
    details: Mapping[str, str | None] | None = None,
    sublabels: Mapping[str, int | None] | None = None,
    cancel: CancelToken | None = None,
    progress: ProgressFn | None = None,
    batch_size: int = 16,
    workers: int = 2,
) -> Iterator[BatchItem]:
    """Grade `paths` as `request` asks (default: the student, no heat map), one BatchItem per file.

    With `log`, each result is recorded as it arrives, with `details` (patient_id, eye,
    visit_date; a DICOM's own fill what is not given, see engine.dicom.case_details) and the
    clinician's `sublabels`; the files are hashed on a thread while the model runs.
    """
    from engine.request import GradeRequest

    files = [str(p) for p in paths]
    request = request or GradeRequest(cam=False)
    cancel = cancel or CancelToken()
    report = progress or (lambda _p: None)
    names = grader.schema.names
    start, done, failed = time.perf_counter(), 0, 0
    hasher = ThreadPoolExecutor(max_workers=1) if log is not None else None
    report(BatchProgress(0, len(files), 0, 0.0))
    graded = grader.grade_files(files, request, batch_size, workers)
    try:
        hashes = _hash_all(hasher, files) if hasher else {}
        for index, (path, result, error) in enumerate(graded):
            if cancel.cancelled:
                break
            item = _item(index, path, result, error, names)
            if result is not None:
                found, notes = case_details(path, details or {})
                item = replace(item, notes=notes)
                if log is not None:
                    item = _record(log, item, found, sublabels, hashes[path])
            done, failed = done + 1, failed + (not item.ok)
            yield item
            report(BatchProgress(done, len(files), failed, time.perf_counter() - start))
            if cancel.cancelled:  # before the next batch is computed
                break
    finally:
        graded.close()  # stops the decoding threads of files not yet read
        if hasher:
            hasher.shutdown(wait=False, cancel_futures=True)
        report(BatchProgress(done, len(files), failed, time.perf_counter() - start, cancelled=cancel.cancelled,
                             finished=True))


def _item(index: int, path: str, result: GradeResult | None, error: str | None, names: tuple[str, ...]) -> BatchItem:
    if result is None:
        return BatchItem(index, path, None, error or "it could not be graded", {"file": path, "error": error})
    return BatchItem(index, path, result, None, result.csv_row(names))


def _hash_all(pool: ThreadPoolExecutor, files: list[str]) -> dict:
    from engine.cases.log import hash_image

    return {p: pool.submit(hash_image, p) for p in dict.fromkeys(files)}


def _record(log: CaseLog, item: BatchItem, details: Mapping[str, str | None], sublabels, sha_future) -> BatchItem:
    """Record one graded file; a refusal (another patient's case, an unreadable file) becomes the item's error."""
    from engine.cases import CaseLogError

    try:
        case = log.record(item.result, **details, sublabels=sublabels, image_sha256=sha_future.result())
    except CaseLogError as e:
        return replace(item, error=f"not recorded: {e}", row={**item.row, "error": f"not recorded: {e}"})
    return replace(item, case=case)
