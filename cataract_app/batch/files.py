"""Which files a batch grades: chosen or dropped files and folders, expanded as `cataract-grade predict --dir` does.

A folder gives every file below it whose extension engine.io reads (DICOM included), sorted by
path, the same list `predict --dir` grades; a file is kept as given when the engine reads its
extension (or is a DICOM file, whatever its name), and set aside with a sentence otherwise. Plain Python, no Qt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.dicom import is_dicom_file
from engine.io import SUPPORTED_EXTENSIONS


@dataclass(frozen=True)
class BatchInputs:
    """The files to grade, in order, and a sentence for each thing dropped that is not one."""

    files: tuple[str, ...]
    problems: tuple[str, ...] = ()


def folder_images(folder: str | Path) -> list[str]:
    """Every readable-looking image below `folder`, sorted: the images `predict --dir FOLDER` grades (it also gives
    every other file a row that says why it was not graded)."""
    return sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in SUPPORTED_EXTENSIONS and p.is_file())


def expand_inputs(paths: Iterable[str | Path]) -> BatchInputs:
    """Files as given, folders expanded; duplicates kept once, in first-seen order."""
    files: dict[str, None] = {}
    problems: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = folder_images(path)
            if not found:
                problems.append(f"{path} holds no image this app reads ({', '.join(SUPPORTED_EXTENSIONS)})")
            files.update(dict.fromkeys(found))
        elif not path.exists():
            problems.append(f"{path} does not exist")
        elif path.suffix.lower() not in SUPPORTED_EXTENSIONS and not is_dicom_file(path):  # devices name none
            problems.append(f"{path.name} was left out: it is not an image this app reads "
                            f"({', '.join(SUPPORTED_EXTENSIONS)})")
        else:
            files[str(path)] = None
    return BatchInputs(tuple(files), tuple(problems))
