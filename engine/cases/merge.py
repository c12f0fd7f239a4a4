"""Reviewed cases added to an earlier dataset: one labels.csv that `validate` and training accept.

The earlier dataset's rows keep every column and value (patient IDs, eyes, splits, ranges, and
any optional column a later version adds); its images go under `base/` inside the new folder,
so every path stays relative. The cases' rows follow. Where the earlier dataset has a `split`
column, a case takes the split of its patient there, and `train` when the patient is new, so
the earlier validation and test images stay as they were. A reviewed case whose photograph is
already in the earlier dataset (same bytes) replaces that row: the clinician's newer review
wins, and the row keeps its split.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from engine.cases.model import Case, CaseLogError, is_formula_like
from engine.data.manifest import LABELS_FILE, SPLITS, validate_dataset
from engine.schema import Schema

BASE_DIR = "base"
TRAIN = "train"


@dataclass(frozen=True)
class BaseDataset:
    """An earlier dataset as its rows' own text, checked by the dataset reader."""

    root: Path
    schema: Schema
    header: tuple[str, ...]
    rows: tuple[dict[str, str], ...]

    @property
    def has_split(self) -> bool:
        return "split" in self.header and any(r.get("split") for r in self.rows)

    def patient_splits(self) -> dict[str, str]:
        """patient ID -> split, from the rows that name both."""
        out: dict[str, str] = {}
        for r in self.rows:
            if r.get("patient_id") and (r.get("split") or "").lower() in SPLITS:
                out.setdefault(r["patient_id"], r["split"].lower())
        return out


def read_base(root: str | Path, schema: Schema | None = None) -> BaseDataset:
    """The earlier dataset, or CaseLogError when it has problems (they must be fixed before adding to it)."""
    folder = Path(root).expanduser().resolve()
    report = validate_dataset(folder, check_images=False, schema=schema)
    if report.problems:
        n = len(report.problems)
        raise CaseLogError(f"the dataset {folder} has {n} problem{'s' if n != 1 else ''} (first: {report.problems[0]}); "
                           "fix it before adding cases to it (`cataract-grade validate` lists them all)")
    text = (folder / LABELS_FILE).read_bytes().decode("utf-8-sig")
    lines = [cells for cells in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in cells)]
    header = tuple(h.strip() for h in lines[0])
    rows = tuple({h: c.strip() for h, c in zip(header, cells, strict=True)} for cells in lines[1:])
    bad = sorted({r["patient_id"] for r in rows if r.get("patient_id") and is_formula_like(r["patient_id"])})
    if bad:
        raise CaseLogError(f"the dataset {folder} has patient ID(s) {', '.join(map(repr, bad[:3]))} that begin like a "
                           "spreadsheet formula (= + - @); rename them before adding cases to it")
    return BaseDataset(folder, report.schema, header, rows)


def base_image(base: BaseDataset, row: dict[str, str]) -> Path:
    return base.root / row["image"].replace("\\", "/")


def same_photographs(base: BaseDataset, cases: list[Case]) -> dict[int, int]:
    """case id -> index of the earlier row holding the same bytes; only files of a matching size are hashed."""
    by_size: dict[int, list[Case]] = {}
    for case in cases:
        try:
            by_size.setdefault(os.stat(case.image_path).st_size, []).append(case)
        except OSError:
            continue  # a missing file is left out of the export anyway
    found: dict[int, int] = {}
    for index, row in enumerate(base.rows):
        try:
            candidates = by_size.get(os.stat(base_image(base, row)).st_size)
        except OSError:
            continue
        if not candidates:
            continue
        digest = hashlib.sha256(base_image(base, row).read_bytes()).hexdigest()
        for case in candidates:
            if case.image_sha256 == digest and case.id not in found:
                found[case.id] = index
    return found


def merge_rows(base: BaseDataset, header: list[str], case_rows: list[dict[str, object]],
               replaces: dict[int, int]) -> tuple[list[str], list[dict[str, object]]]:
    """The merged header and rows: the earlier rows (image under base/, a replaced one dropped), then the cases'.

    `case_rows` carry their case id under "_case"; `replaces` maps a case id to the earlier row it replaces.
    """
    merged_header = list(base.header) + [c for c in header if c not in base.header]
    if base.has_split and "split" not in merged_header:
        merged_header.append("split")
    homes = base.patient_splits()
    dropped = set(replaces.values())
    rows: list[dict[str, object]] = []
    for index, row in enumerate(base.rows):
        if index not in dropped:
            rows.append({**row, "image": f"{BASE_DIR}/{row['image'].replace(chr(92), '/')}"})
    for row in case_rows:
        out = {k: v for k, v in row.items() if k != "_case"}
        earlier = base.rows[replaces[row["_case"]]] if row["_case"] in replaces else None
        if earlier is not None and not out.get("patient_id"):
            out["patient_id"] = earlier.get("patient_id") or None
        if base.has_split:
            patient = out.get("patient_id")
            out["split"] = homes.get(patient) if patient in homes else (
                (earlier.get("split") or TRAIN) if earlier is not None else TRAIN)
        rows.append(out)
    return merged_header, rows
