"""What a batch writes: its CSV row by row, heat-map files whose names never collide, JSON that is always valid.

`CsvStream` writes each row to `<file>.partial` as it arrives (a full disk or a kill keeps
the rows already graded) and renames it onto the file at the end, so the file itself is
only ever complete. `output_names` gives every input a name for its outputs that mirrors
its path relative to the batch's folder, so a/x.png and b/x.png, or x.png and x.tif, never
share a heat map. `write_heat_map` writes the overlay PNG and/or the raw float map (.npy)
through temp files. `json_line` turns non-finite floats into null: JSON has no NaN.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from engine.errors import EngineError
from engine.fsutil import atomic_write_bytes, fsync_dir, write_step

CAM_FORMATS = ("png", "npy", "both")
CAM_SUFFIX = "_cam"


class OutputError(EngineError):
    """An output that could not be written, with the reason and what was kept, in one sentence."""


def _reason(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__


class CsvStream:
    """A CSV file written one row at a time into `<path>.partial`, renamed onto `path` by `close()`."""

    def __init__(self, path: str | Path, header: Sequence[str]) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.rows = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.partial, "w", newline="", encoding="utf-8")  # noqa: SIM115  (closed in close/abort)
            self._writer = csv.DictWriter(self._fh, fieldnames=list(header), restval="", extrasaction="ignore")
            self._writer.writeheader()
            self._fh.flush()
            self._good = self._fh.tell()  # where the last complete row ends
        except OSError as e:
            raise OutputError(f"{self.path} could not be written ({_reason(e)})") from None

    def write(self, row: Mapping[str, object]) -> None:
        """Append one row and flush it to the OS, so it survives a crash of this process."""
        try:
            write_step("csv.row")
            self._writer.writerow(row)
            self._fh.flush()
            self._good = self._fh.tell()
        except OSError as e:
            self._fail(e)
        self.rows += 1

    def close(self) -> None:
        """Sync the rows and rename the partial file onto the final one (all rows or the old file, never half)."""
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            write_step("csv.rows-synced")
            os.replace(self.partial, self.path)
            fsync_dir(self.path.parent)
        except OSError as e:
            self._fail(e)

    def abort(self) -> None:
        """Stop without renaming: the partial file keeps the rows written so far."""
        try:
            self._fh.close()
        except OSError:
            pass

    def _fail(self, e: OSError) -> None:
        self.abort()
        try:  # a row cut off by the failed write is not kept
            os.truncate(self.partial, self._good)
        except OSError:
            pass
        raise OutputError(f"{self.path} could not be written ({_reason(e)}); the {self.rows} row(s) written before "
                          f"are kept in {self.partial}") from None


def output_names(paths: Sequence[str], folder: str | Path | None = None) -> dict[str, str]:
    """A relative output name per input path (posix form, the file name with its extension), unique per file.

    Files inside `folder` keep their path relative to it; the others their path relative to
    the deepest folder they share. Two different files that would still share a name (a
    file given by hand and one in `folder`) get ~2, ~3... after the name.
    """
    base = Path(folder).resolve() if folder is not None else None
    loose = [Path(p).resolve() for p in paths if base is None or not _inside(Path(p).resolve(), base)]
    common = Path(os.path.commonpath([str(p.parent) for p in loose])) if loose else None
    names: dict[str, str] = {}
    owner: dict[str, Path] = {}  # name -> the file that has it
    for p in paths:
        real = Path(p).resolve()
        root = base if base is not None and _inside(real, base) else common
        name = real.relative_to(root).as_posix() if root is not None else real.name
        candidate, n = name, 1
        while candidate in owner and owner[candidate] != real:
            n += 1
            candidate = f"{name}~{n}"
        owner[candidate] = real
        names[p] = candidate
    return names


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def heat_map_files(out_dir: str | Path, name: str, cam_format: str) -> list[Path]:
    """Where the heat map of the input named `name` goes: `<name>_cam.png` and/or `<name>_cam.npy`."""
    if cam_format not in CAM_FORMATS:
        raise OutputError(f"heat-map format {cam_format!r} is not one of {', '.join(CAM_FORMATS)}")
    kinds = ("png", "npy") if cam_format == "both" else (cam_format,)
    return [Path(out_dir) / f"{name}{CAM_SUFFIX}.{k}" for k in kinds]


def write_heat_map(files: Iterable[Path], heat: np.ndarray, overlay_rgb=None) -> None:
    """Write each file of `heat_map_files`: .npy the float32 map (H x W, 0-1), .png the RGB overlay.

    overlay_rgb: a callable giving the HxWx3 uint8 overlay (only called when a PNG is wanted).
    """
    for path in files:
        if path.suffix == ".npy":
            buf = io.BytesIO()
            np.save(buf, np.asarray(heat, dtype=np.float32), allow_pickle=False)
            data = buf.getvalue()
        else:
            import cv2

            ok, encoded = cv2.imencode(".png", cv2.cvtColor(overlay_rgb(), cv2.COLOR_RGB2BGR))
            if not ok:
                raise OutputError(f"{path} could not be encoded as PNG")
            data = encoded.tobytes()
        try:
            atomic_write_bytes(path, data)
        except OSError as e:
            raise OutputError(f"{path} could not be written ({_reason(e)})") from None


def finite(value: object) -> object:
    """`value` with every non-finite float (NaN, inf) replaced by None, through dicts, lists and tuples."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, np.generic):
        return finite(value.item())
    return value


def json_line(obj: object, **kw) -> str:
    """`obj` as strict JSON (no NaN or Infinity tokens, which JSON does not have)."""
    return json.dumps(finite(obj), allow_nan=False, **kw)
