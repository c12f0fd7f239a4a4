"""The lens circles of a dataset's photographs, for training with the lens crop.

A model trained with crop "lens" sees each photograph cut around the lens the finder sees,
exactly as grading cuts it: `engine.roi.find_lens`, and a fit below the gate's confidence
(`GateConfig.min_confidence`) counts as no lens, for which the crop falls back to the
centred square. The finder takes a few milliseconds a photograph, decoding it often more,
so the circles are found once per dataset, in one pass before the first epoch that decodes
every image (and so also refuses an unreadable one, naming it), and kept in
`lens-circles.json` beside labels.csv (in the run folder when the dataset folder cannot be
written), keyed by each image's path, size and modification time and by the finder's
version. Circles are stored with the size of the image they were found on and scaled to
the size a reader decodes, so a reduced decode crops the same part of the photograph.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.gate import GateConfig
from engine.roi import Circle, find_lens

CACHE_FILE = "lens-circles.json"
CACHE_FORMAT = "cataract-grader-lens-circles"
FINDER_VERSION = 1  # raise when engine.roi's finder changes what it finds: every cache is then refound


@dataclass(frozen=True)
class Located:
    """One photograph's lens as the finder saw it: the circle (None: no lens), its confidence, the image's (h, w)."""

    circle: Circle | None
    confidence: float
    shape: tuple[int, int]

    def circle_at(self, shape: tuple[int, ...]) -> Circle | None:
        """The circle in pixels of the same photograph decoded at another (h, w)."""
        if self.circle is None:
            return None
        h, w = shape[:2]
        if (h, w) == self.shape:
            return self.circle
        sx, sy = w / self.shape[1], h / self.shape[0]
        c = self.circle
        return Circle((c.cx + 0.5) * sx - 0.5, (c.cy + 0.5) * sy - 0.5, c.r * math.sqrt(sx * sy))


def locate(rgb: np.ndarray, min_confidence: float = GateConfig.min_confidence) -> Located:
    """The finder on one photograph, with the gate's rule for 'no lens'."""
    fit = find_lens(rgb)
    found = fit.circle if fit.circle is not None and fit.confidence >= min_confidence else None
    return Located(found, float(fit.confidence), (int(rgb.shape[0]), int(rgb.shape[1])))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class LensTable:
    """Lens circles by image path, shared by a run's datasets; a photograph it has not seen is located on first use."""

    def __init__(self, min_confidence: float = GateConfig.min_confidence) -> None:
        self.min_confidence = float(min_confidence)
        self._by_path: dict[str, Located] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_path)

    def get(self, path: str | Path) -> Located | None:
        return self._by_path.get(str(path))

    def add(self, path: str | Path, rgb: np.ndarray) -> Located:
        """Locate the lens of a decoded photograph and keep it."""
        found = locate(rgb, self.min_confidence)
        with self._lock:
            self._by_path[str(path)] = found
        return found

    def circle_for(self, path: str | Path, rgb: np.ndarray) -> Circle | None:
        """The lens circle of this decoded photograph, in its pixels (located now if it was not yet)."""
        found = self.get(path) or self.add(path, rgb)
        return found.circle_at(rgb.shape)

    def counts(self, paths: Iterable[str | Path]) -> tuple[int, int]:
        """(found, total) over these paths."""
        seen = [self._by_path.get(str(p)) for p in paths]
        return sum(1 for s in seen if s is not None and s.circle is not None), len(seen)

    # ---- the cache file --------------------------------------------------------------------------
    def load(self, file: Path, root: Path, records: Iterable) -> int:
        """Take the cached circles of these records whose file is unchanged; returns how many were taken."""
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 0  # missing or damaged: everything is found again
        if not (isinstance(data, dict) and data.get("format") == CACHE_FORMAT and data.get("finder") == FINDER_VERSION
                and data.get("min_confidence") == self.min_confidence and isinstance(data.get("images"), dict)):
            return 0
        images, taken = data["images"], 0
        for r in records:
            entry = _entry(images.get(r.rel_path), _stamp(Path(r.image)))
            if entry is not None:
                self._by_path[str(r.image)] = entry
                taken += 1
        return taken

    def save(self, file: Path, records: Iterable) -> None:
        """Write the circles of these records (through a temporary file); raises OSError when it cannot."""
        from engine.fsutil import atomic_write_text

        images = {}
        for r in records:
            found, stamp = self._by_path.get(str(r.image)), _stamp(Path(r.image))
            if found is None or stamp is None:
                continue
            c = found.circle
            images[r.rel_path] = {
                "size": stamp[0], "mtime_ns": stamp[1], "shape": list(found.shape),
                "circle": None if c is None else [round(c.cx, 3), round(c.cy, 3), round(c.r, 3)],
                "confidence": round(found.confidence, 4),
            }
        data = {"format": CACHE_FORMAT, "finder": FINDER_VERSION, "min_confidence": self.min_confidence,
                "images": images}
        atomic_write_text(file, json.dumps(data, indent=0, sort_keys=True) + "\n")


def _entry(item: object, stamp: tuple[int, int] | None) -> Located | None:
    """A cache entry as Located, when it is well formed and its file is unchanged."""
    if not isinstance(item, dict) or stamp is None or (item.get("size"), item.get("mtime_ns")) != stamp:
        return None
    try:
        h, w = (int(v) for v in item["shape"])
        c = item["circle"]
        circle = None if c is None else Circle(*(float(v) for v in c))
        conf = float(item["confidence"])
    except (KeyError, TypeError, ValueError):
        return None
    if h < 1 or w < 1 or (circle is not None and not (circle.r > 0 and all(map(math.isfinite, (circle.cx, circle.cy, circle.r))))):
        return None
    return Located(circle, conf, (h, w))


@dataclass(frozen=True)
class LensSummary:
    """What the lens pass did, for the run's card: found / total, taken from the cache, where the cache lives."""

    found: int
    total: int
    cached: int
    cache: str | None

    def to_dict(self) -> dict:
        return {"found": self.found, "total": self.total, "cached": self.cached, "cache": self.cache}


def locate_dataset(manifest, table: LensTable, fallback_dir: Path,
                   progress: Callable[[int, int, int], None] | None = None) -> LensSummary:
    """Find the lens of every photograph of a dataset once (cached), or raise DatasetError naming unreadable ones.

    progress(done, total, found) is called as photographs are decoded and looked at.
    """
    from engine.data.manifest import DatasetError, check_image_files

    records = list(manifest.records)
    files = [Path(manifest.root) / CACHE_FILE, Path(fallback_dir) / CACHE_FILE]
    cached = max((table.load(f, Path(manifest.root), records) for f in files), default=0)
    todo = [r for r in records if table.get(r.image) is None]
    problems: list = []
    found = [table.counts(r.image for r in records)[0]]
    lock = threading.Lock()

    def seen(record, rgb) -> None:  # on a decoding thread
        if table.add(record.image, rgb).circle is not None:
            with lock:
                found[0] += 1

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(cached + done, len(records), found[0])

    if todo:
        check_image_files(todo, problems, report, on_image=seen)
    if problems:
        raise DatasetError(problems, manifest.root)
    where = None
    for f in files:
        try:
            table.save(f, records)
            where = str(f)
            break
        except OSError:
            continue  # a read-only dataset folder: the run folder keeps it
    n_found, total = table.counts(r.image for r in records)
    if progress is not None and not todo:
        progress(total, total, n_found)
    return LensSummary(n_found, total, cached, where)
