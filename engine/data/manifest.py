"""The dataset format: a folder with `labels.csv`, the images it lists, and an optional `schema.json`.

labels.csv columns: `image` (path relative to the folder), `grade` (0-7), one column per
sub-label of the schema (blank = unknown), and optionally `patient_id`, `eye`, `split`
(train/val/test), `grade_min`, `grade_max`, and the lens circle `lens_cx`, `lens_cy`,
`lens_r` (pixels of the image; all three or none). Line numbers count the header as line 1.
Every problem is collected before anything is raised, so one run lists them all.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from engine.data.csvscan import quoted_line_breaks
from engine.errors import EngineError
from engine.io import REDUCED_MIN_SIDE, SUPPORTED_EXTENSIONS, ImageReadError, read_image_reduced
from engine.schema import DEFAULT_SCHEMA, GRADES, NUM_GRADES, Schema, SchemaError, strict_float, strict_int

LABELS_FILE = "labels.csv"
SCHEMA_FILE = "schema.json"
REQUIRED_COLUMNS = ("image", "grade")
LENS_COLUMNS = ("lens_cx", "lens_cy", "lens_r")
OPTIONAL_COLUMNS = ("patient_id", "eye", "split", "grade_min", "grade_max", *LENS_COLUMNS)
SPLITS = ("train", "val", "test")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Record:
    """One labelled image; sub-labels are in schema order, None where unknown."""

    image: Path
    rel_path: str
    grade: int
    sublabels: tuple[int | None, ...]
    patient_id: str | None = None
    eye: str | None = None
    split: str | None = None
    grade_min: int | None = None
    grade_max: int | None = None
    line: int = 0
    lens: tuple[float, float, float] | None = None  # (cx, cy, r) px, where the CSV gives it


@dataclass
class Problem:
    """One thing wrong with a dataset, at a CSV line (header = 1; 0 for the file as a whole)."""

    line: int
    message: str
    file: str = LABELS_FILE

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class DatasetError(EngineError):
    """A dataset with problems; `problems` lists every one of them."""

    def __init__(self, problems: list[Problem], root: str | Path | None = None) -> None:
        self.problems = list(problems)
        self.root = root
        where = f"the dataset in {root}" if root is not None else "the dataset"
        n = len(self.problems)
        shown = "; ".join(str(p) for p in self.problems[:3])
        more = f" (and {n - 3} more; `cataract-grade validate` lists them all)" if n > 3 else ""
        if n == 1 and self.problems[0].line == 0 and self.problems[0].file == LABELS_FILE:
            super().__init__(self.problems[0].message)  # no folder, or no labels.csv: one sentence says it all
        else:
            super().__init__(f"{where} has {n} problem{'s' if n != 1 else ''}: {shown}{more}")

    def __reduce__(self):
        return (type(self), (self.problems, self.root))


@dataclass
class Manifest:
    """A loaded, clean dataset: its folder, schema and records."""

    root: Path
    schema: Schema
    records: list[Record]
    labels_sha256: str = ""

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __getitem__(self, i: int) -> Record:
        return self.records[i]


@dataclass
class ValidationReport:
    """Every problem found, the rows that were clean, and counts for a summary."""

    problems: list[Problem]
    records: list[Record]
    schema: Schema
    summary: dict = field(default_factory=dict)
    labels_sha256: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


# ---- public API ------------------------------------------------------------------------------


def load_dataset(root: str | Path, schema: Schema | None = None, check_images: bool = False) -> Manifest:
    """Load a dataset folder, or raise DatasetError listing every problem in it."""
    report = validate_dataset(root, check_images=check_images, schema=schema)
    if report.problems:
        raise DatasetError(report.problems, root)
    return Manifest(Path(root).resolve(), report.schema, report.records, report.labels_sha256)


def validate_dataset(
    root: str | Path, check_images: bool = True, schema: Schema | None = None, progress: Progress | None = None
) -> ValidationReport:
    """Check a dataset folder and report every problem; decoding images is the slow part, so it can be skipped."""
    root = Path(root)
    problems: list[Problem] = []
    used = _resolve_schema(root, schema, problems)
    labels = root / LABELS_FILE
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        problems.append(Problem(0, f"the dataset folder {root} {what} (a dataset is a folder holding {LABELS_FILE})"))
    elif not labels.is_file():
        problems.append(Problem(0, f"there is no {LABELS_FILE} in {root}"))
    if problems:
        return ValidationReport(problems, [], used or DEFAULT_SCHEMA, summarize([], used or DEFAULT_SCHEMA))
    try:
        data = labels.read_bytes()
    except OSError as e:
        problems.append(Problem(0, f"{LABELS_FILE} cannot be read ({e.strerror or e})"))
        return ValidationReport(problems, [], used or DEFAULT_SCHEMA, summarize([], used or DEFAULT_SCHEMA))
    rows = _read_rows(data, problems)
    records: list[Record] = []
    if rows is not None and _check_header(rows[0], used, problems):
        records = _check_rows(root.resolve(), rows, used, problems)
        if check_images:
            records = check_image_files(records, problems, progress)
    problems.sort(key=lambda p: (p.file != SCHEMA_FILE, p.line))
    digest = hashlib.sha256(data).hexdigest()
    return ValidationReport(problems, records, used, summarize(records, used), digest)


def dataset_fingerprint(manifest: Manifest) -> str:
    """A short identity of the labels and schema a model was trained on, for its model card."""
    core = f"{manifest.labels_sha256}:{manifest.schema.fingerprint()}"
    return hashlib.sha256(core.encode()).hexdigest()[:16]


def summarize(records: list[Record], schema: Schema) -> dict:
    """Counts per grade and per split, patients, and how often each sub-label is known."""
    grades = Counter(r.grade for r in records)
    splits = Counter(r.split or "unassigned" for r in records)
    return {
        "images": len(records),
        "per_grade": {g: grades.get(g, 0) for g in GRADES},
        "per_split": {s: splits.get(s, 0) for s in (*SPLITS, "unassigned")},
        "patients": len({r.patient_id for r in records if r.patient_id}),
        "sublabels_known": {n: sum(r.sublabels[i] is not None for r in records) for i, n in enumerate(schema.names)},
    }


# ---- file-level checks -----------------------------------------------------------------------


def _resolve_schema(root: Path, schema: Schema | None, problems: list[Problem]) -> Schema | None:
    path = root / SCHEMA_FILE
    if not path.is_file():
        return schema or DEFAULT_SCHEMA
    try:
        own = Schema.load(path)
    except SchemaError as e:
        problems.append(Problem(0, f"{SCHEMA_FILE} is invalid: {e}", SCHEMA_FILE))
        return None
    if schema is not None and schema.fingerprint() != own.fingerprint():
        problems.append(
            Problem(0, f"{SCHEMA_FILE} defines sub-labels {', '.join(own.names)}, not the expected "
                    f"{', '.join(schema.names)}", SCHEMA_FILE)
        )
        return None
    return schema or own


def _read_rows(data: bytes, problems: list[Problem]) -> list[tuple[int, list[str]]] | None:
    """Decode labels.csv into (line, cells) pairs, header first; None when it is not a readable CSV."""
    if b"\x00" in data:
        problems.append(Problem(0, f"{LABELS_FILE} is not a text CSV file (it holds binary data)"))
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        problems.append(Problem(0, f"{LABELS_FILE} is not UTF-8 text (bad byte at offset {e.start}); save it as UTF-8 CSV"))
        return None
    last = text.count("\n") + (not text.endswith("\n"))
    for opened, closed in quoted_line_breaks(text):  # reported where the quote opened, not where csv noticed
        if closed is None:
            problems.append(Problem(opened, f"a quote opens a cell on this line and is never closed, so lines "
                                            f"{opened}-{last} were read as one cell; close the quote or remove it"))
        else:
            problems.append(Problem(opened, f"a quoted cell opens on this line and runs on to line {closed}; cells "
                                            f"in {LABELS_FILE} hold no line breaks, so a quote is probably not closed"))
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    end = 0
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            if any("\n" in c or "\r" in c for c in cells):
                continue  # the row of such a cell is reported above
            if any(c.strip() for c in cells):
                rows.append((start, cells))
    except csv.Error as e:
        problems.append(Problem(end + 1, f"not valid CSV ({e})"))
        return None
    if not rows:
        if not problems:
            problems.append(Problem(0, f"{LABELS_FILE} is empty"))
        return None
    if len(rows) == 1:
        problems.append(Problem(0, f"{LABELS_FILE} has a header but no rows"))
    return rows


def _check_header(header: tuple[int, list[str]], schema: Schema | None, problems: list[Problem]) -> bool:
    """Report header problems; True when the rows can still be checked."""
    if schema is None:
        return False
    line, names = header[0], [h.strip() for h in header[1]]
    for sep in (";", "\t"):
        if len(names) == 1 and sep in names[0]:
            problems.append(Problem(line, f"the columns are separated by {sep!r}; save {LABELS_FILE} with commas"))
            return False
    expected = (*REQUIRED_COLUMNS, *schema.names)
    for name, n in Counter(names).items():
        if n > 1:
            problems.append(Problem(line, f"column '{name}' appears {n} times"))
    missing = [c for c in expected if c not in names]
    if missing:
        hint = " (leave a sub-label's cells blank where it is unknown)" if set(missing) - set(REQUIRED_COLUMNS) else ""
        problems.append(Problem(line, f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)}{hint}"))
    for name in names:
        if name not in expected and name not in OPTIONAL_COLUMNS:
            problems.append(
                Problem(line, f"unknown column '{name}'; expected {', '.join(expected)} and optionally "
                        f"{', '.join(OPTIONAL_COLUMNS)}")
            )
    return all(c in names for c in REQUIRED_COLUMNS)


# ---- row-level checks ------------------------------------------------------------------------


def _check_rows(root: Path, rows: list[tuple[int, list[str]]], schema: Schema, problems: list[Problem]) -> list[Record]:
    header = [h.strip() for h in rows[0][1]]
    records: list[Record] = []
    parsed: list[Record] = []  # also rows with problems, so split conflicts show up in the same run
    seen: dict[str, int] = {}
    for line, cells in rows[1:]:
        if len(cells) != len(header):
            problems.append(Problem(line, f"the row has {len(cells)} cells but the header has {len(header)}"))
            continue
        values = {h: c.strip() for h, c in zip(header, cells, strict=True)}
        record, messages = _parse_row(root, line, values, schema)
        if record is not None and record.rel_path in seen:
            messages.append(f"image '{record.rel_path}' is listed twice (first on line {seen[record.rel_path]})")
        problems.extend(Problem(line, m) for m in messages)
        if record is not None:
            seen.setdefault(record.rel_path, line)
            parsed.append(record)
        if record is not None and not messages:
            records.append(record)
    _check_splits(parsed, "split" in header, problems)
    return records


def _parse_row(root: Path, line: int, values: dict[str, str], schema: Schema) -> tuple[Record | None, list[str]]:
    """Parse one row; the record is None when its image path is unusable."""
    messages: list[str] = []
    rel = _image_path(values["image"], messages)
    grade = _int_cell(values["grade"], "grade", 0, NUM_GRADES - 1, messages, required=True)
    subs: list[int | None] = []
    for sub in schema.sublabels:
        text = values.get(sub.name, "")
        try:
            subs.append(sub.check(text) if text else None)
        except SchemaError as e:
            messages.append(str(e))
            subs.append(None)
    lo = _int_cell(values.get("grade_min", ""), "grade_min", 0, NUM_GRADES - 1, messages)
    hi = _int_cell(values.get("grade_max", ""), "grade_max", 0, NUM_GRADES - 1, messages)
    if lo is not None and hi is not None and lo > hi:
        messages.append(f"grade_min {lo} is greater than grade_max {hi}")
    elif grade is not None and lo is not None and grade < lo:
        messages.append(f"grade {grade} is below grade_min {lo}")
    elif grade is not None and hi is not None and grade > hi:
        messages.append(f"grade {grade} is above grade_max {hi}")
    lens = _lens_cells(values, messages)
    split = values.get("split", "").lower() or None
    if split is not None and split not in SPLITS:
        messages.append(f"split '{values['split']}' is not one of {', '.join(SPLITS)}")
    if rel is None:
        return None, messages
    if PurePosixPath(rel).suffix.lower() in SUPPORTED_EXTENSIONS:
        _check_file(root / rel, rel, messages)
    record = Record(
        image=root / rel, rel_path=rel, grade=grade if grade is not None else 0, sublabels=tuple(subs),
        patient_id=values.get("patient_id") or None, eye=values.get("eye") or None, split=split,
        grade_min=lo, grade_max=hi, line=line, lens=lens,
    )
    return record, messages


def _image_path(text: str, messages: list[str]) -> str | None:
    if not text:
        messages.append("image is blank")
        return None
    posix = text.replace("\\", "/")
    parts = [p for p in PurePosixPath(posix).parts if p not in ("", ".")]
    if posix.startswith("/") or PureWindowsPath(text).drive or ".." in parts or not parts:
        messages.append(f"image path '{text}' must be relative to the dataset folder and stay inside it")
        return None
    rel = "/".join(parts)
    if PurePosixPath(rel).suffix.lower() not in SUPPORTED_EXTENSIONS:
        messages.append(f"image '{rel}' has an unsupported extension; supported are {', '.join(SUPPORTED_EXTENSIONS)}")
    return rel


def _int_cell(text: str, what: str, lo: int, hi: int, messages: list[str], required: bool = False) -> int | None:
    if not text:
        if required:
            messages.append(f"{what} is blank")
        return None
    try:
        value = strict_int(text)
    except ValueError:
        messages.append(f"{what} '{text}' is not an integer (write it in the digits 0-9)")
        return None
    if not lo <= value <= hi:
        messages.append(f"{what} {value} is outside {lo}-{hi}")
        return None
    return value


def _lens_cells(values: dict[str, str], messages: list[str]) -> tuple[float, float, float] | None:
    """The lens circle of a row: None when all three cells are blank or absent."""
    cells = [values.get(c, "") for c in LENS_COLUMNS]
    if not any(cells):
        return None
    if not all(cells):
        messages.append(f"give all of {', '.join(LENS_COLUMNS)} or none of them")
        return None
    try:
        cx, cy, r = (strict_float(c) for c in cells)
    except ValueError:
        messages.append(f"lens circle {', '.join(cells)} holds a cell that is not a number")
        return None
    if not all(math.isfinite(v) for v in (cx, cy, r)) or r <= 0:
        messages.append(f"lens circle {', '.join(cells)} needs finite numbers and a radius above 0")
        return None
    return cx, cy, r


def _check_file(path: Path, rel: str, messages: list[str]) -> None:
    if path.is_dir():
        messages.append(f"image '{rel}' is a folder, not a file")
    elif not path.exists():
        messages.append(f"image file '{rel}' does not exist")


def _check_splits(records: list[Record], has_split: bool, problems: list[Problem]) -> None:
    """One patient must not be in two splits; a split column is filled on every row or on none."""
    first: dict[str, Record] = {}
    for r in records:
        if r.patient_id is None or r.split not in SPLITS:
            continue
        seen = first.setdefault(r.patient_id, r)
        if seen.split != r.split:
            problems.append(Problem(r.line, f"patient '{r.patient_id}' is in split '{r.split}' here "
                                            f"but in '{seen.split}' on line {seen.line}"))
    blank = [r.line for r in records if r.split is None]
    if has_split and blank and any(r.split in SPLITS for r in records):
        problems.append(Problem(blank[0], f"split is blank here and on {len(blank) - 1} other row(s) while other "
                                          "rows set it; fill it on every row or on none"))


def check_image_files(records: list[Record], problems: list[Problem], progress: Progress | None,
                      on_image: Callable[[Record, object], None] | None = None) -> list[Record]:
    """Decode every image (threads: OpenCV releases the GIL); keep the records whose image reads.

    Large photographs decode at the reduced scale training uses; that still reads every byte of the file.
    on_image(record, rgb) is called with each decoded image, on the decoding thread (the lens
    finder of a lens-crop training run looks at it there, so each image is decoded once).
    """

    def check(r: Record) -> str | None:
        try:
            rgb = read_image_reduced(r.image, REDUCED_MIN_SIDE).rgb
        except ImageReadError as e:
            return e.reason
        if on_image is not None:
            on_image(r, rgb)
        return None

    good: list[Record] = []
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, (r, reason) in enumerate(zip(records, pool.map(check, records), strict=True), 1):
            if reason is None:
                good.append(r)
            else:
                problems.append(Problem(r.line, f"image '{r.rel_path}': {reason}"))
            if progress is not None:
                progress(i, len(records))
    return good
