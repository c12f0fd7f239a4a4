"""Export reviewed cases as a dataset folder that `cataract-grade validate` and training accept.

    OUT/labels.csv     image, grade (the clinician's final grade), the schema's sub-labels (what
                       the clinician entered; blank = unknown), patient_id, eye
    OUT/schema.json    the sub-label schema the columns follow
    OUT/images/        one file per case, named by case id (copied, hard-linked or symlinked)
    OUT/cases.csv      provenance: case id, source file, SHA-256, model grade, reviewer, note

Patient IDs are kept, so training splits by patient. The folder is built under a temporary
name beside OUT, checked with the dataset reader, then renamed: OUT is whole or absent.
Cells that a spreadsheet would run as a formula (= + - @ first, not a plain number) are
written with a leading apostrophe; a patient ID of that kind would change, so the export
refuses it instead (record time refuses it too). A case whose file is missing or changed
since grading is left out and listed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine.cases.model import Case, CaseLogError, CaseSummary, is_formula_like
from engine.fsutil import atomic_write_text
from engine.schema import DEFAULT_SCHEMA, Schema, SchemaError

LINK_MODES = ("copy", "hardlink", "symlink")
IMAGES_DIR = "images"
CASES_FILE = "cases.csv"
PROVENANCE = ("case_id", "image", "source_image", "image_sha256", "patient_id", "eye", "visit_date", "model_grade",
              "model_name", "final_grade", "status", "reviewed_by", "reviewed_at", "note")


class ReviewedCases(Protocol):
    """What an export reads from a case log (CaseLog is one)."""

    def reviewed_since(self, since: str | None) -> list[CaseSummary]: ...

    def get(self, case_id: int) -> Case: ...


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    rows: int
    skipped: tuple[tuple[int, str], ...]  # (case id, why it was left out)
    link: str  # how the images were placed ("copy" when hard links were not possible)


def active_model_trained_at(store_root: str | Path | None = None, role: str = "student") -> str:
    """When the active model was trained (its card's date): where "cases reviewed since" starts."""
    from engine.bundle import read_card
    from engine.model_store import ModelStore, default_store_root

    path = ModelStore(store_root or default_store_root()).active(role)
    try:
        return read_card(path).created
    except ValueError as e:
        raise CaseLogError(f"the active {role}'s training date cannot be read ({e})") from None


def neutralise(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if is_formula_like(text) or text[:1] in ("\t", "\r") else text


def export_reviewed(log: ReviewedCases, out: str | Path, *, since: str | None = None, link: str = "copy",
                    schema: Schema | None = None, patient_id: str | None = None) -> ExportResult:
    """Write the cases reviewed since `since` (all reviewed cases when None) as a dataset folder at `out`."""
    if link not in LINK_MODES:
        raise CaseLogError(f"link mode {link!r} is not one of {', '.join(LINK_MODES)}")
    target = Path(out).expanduser().resolve()
    _check_target(target)
    schema = schema or DEFAULT_SCHEMA
    cases = [log.get(s.id) for s in log.reviewed_since(since) if patient_id is None or s.patient_id == patient_id]
    if not cases:
        when = f" since {since}" if since else ""
        raise CaseLogError(f"there are no reviewed cases{when} to export; agree with or correct some cases first")
    bad = [c.id for c in cases if c.patient_id and is_formula_like(c.patient_id)]
    if bad:
        raise CaseLogError(f"case(s) {', '.join(map(str, bad))} have a patient ID that begins like a spreadsheet "
                           "formula (= + - @); change the ID with `cases edit` before exporting")
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        result = _write(tmp, target, cases, schema, link)
        _finish(tmp, target)
        return result
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_target(target: Path) -> None:
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise CaseLogError(f"{target} already exists; export into a new (or empty) folder")
    if not target.parent.is_dir():
        raise CaseLogError(f"the folder {target.parent} does not exist")


def _write(tmp: Path, target: Path, cases: list[Case], schema: Schema, link: str) -> ExportResult:
    (tmp / IMAGES_DIR).mkdir(parents=True)
    labels, provenance, skipped, used = [], [], [], link
    for case in cases:
        try:
            subs = schema.validate(case.sublabels or {})
        except SchemaError as e:
            skipped.append((case.id, f"its sub-labels do not fit the schema ({e})"))
            continue
        rel = f"{IMAGES_DIR}/{case.id:06d}{Path(case.image_path).suffix.lower()}"
        problem, used = _place(case, tmp / rel, used)
        if problem:
            skipped.append((case.id, problem))
            continue
        labels.append([rel, case.final_grade, *(subs[n] for n in schema.names), case.patient_id, case.eye])
        provenance.append([case.id, rel, case.image_path, case.image_sha256, case.patient_id, case.eye,
                           case.visit_date, case.model_grade, case.model_name, case.final_grade, case.status,
                           case.reviewed_by, case.reviewed_at, case.note])
    if not labels:
        raise CaseLogError("no reviewed case could be exported: " + "; ".join(f"case {i}: {r}" for i, r in skipped))
    atomic_write_text(tmp / "labels.csv", _csv(["image", "grade", *schema.names, "patient_id", "eye"], labels))
    atomic_write_text(tmp / CASES_FILE, _csv(list(PROVENANCE), provenance))
    schema.save(tmp / "schema.json")
    _self_check(tmp, schema)
    return ExportResult(target, len(labels), tuple(skipped), used)


def _place(case: Case, dest: Path, link: str) -> tuple[str | None, str]:
    """Put the case's image at `dest`; (why not, or None) and the link mode that was used."""
    src = Path(case.image_path)
    if not src.is_file():
        return f"its image {src} is missing (moved or deleted since it was graded)", link
    if link == "copy":
        data = src.read_bytes()
        if hashlib.sha256(data).hexdigest() != case.image_sha256:
            return f"its image {src} has changed since it was graded", link
        with open(dest, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return None, link
    from engine.cases.model import sha256_file

    if sha256_file(src) != case.image_sha256:
        return f"its image {src} has changed since it was graded", link
    if link == "symlink":
        dest.symlink_to(src)
        return None, link
    try:
        os.link(src, dest)
        return None, link
    except OSError:  # another disk, or a file system without hard links
        return _place(case, dest, "copy")[0], "copy"


def _csv(header: list[str], rows: list[list[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[neutralise(v) for v in row] for row in rows])
    return buf.getvalue()


def _self_check(folder: Path, schema: Schema) -> None:
    from engine.data.manifest import validate_dataset

    report = validate_dataset(folder, check_images=False, schema=schema)
    if report.problems:
        shown = "; ".join(str(p) for p in report.problems[:3])
        raise CaseLogError(f"the exported dataset does not pass its own check ({shown}); nothing was written")


def _finish(tmp: Path, target: Path) -> None:
    if target.is_dir():
        target.rmdir()  # empty (checked above); os.replace onto a folder is not portable
    os.replace(tmp, target)
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
