"""Where the next image comes from: the same folder (next/previous) and the recent-files list."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QSettings

MAX_RECENT = 10
RECENT_KEY = "recent_files"
OPEN_FOLDER_KEY = "open_folder"  # where the Open dialog starts: the folder of the last image opened
# Used only until engine.io answers; the list that counts is engine.io.SUPPORTED_EXTENSIONS.
FALLBACK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def supported_extensions() -> tuple[str, ...]:
    """The image file extensions the engine can read, lower case with the dot."""
    try:
        from engine.io import SUPPORTED_EXTENSIONS
    except ImportError:
        return FALLBACK_EXTENSIONS
    return tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in SUPPORTED_EXTENSIONS)


def natural_key(path: Path) -> list:
    """Sort 'img2' before 'img10', as a file manager does."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def sibling_images(path: str | Path, extensions: Iterable[str] | None = None) -> list[Path]:
    """The readable-looking images in `path`'s folder, naturally sorted."""
    exts = {e.lower() for e in (extensions or supported_extensions())}
    folder = Path(path).parent
    try:
        entries = [p for p in folder.iterdir() if p.suffix.lower() in exts and p.is_file()]
    except OSError:
        return []
    return sorted(entries, key=natural_key)


def step_image(path: str | Path, step: int, extensions: Iterable[str] | None = None) -> Path | None:
    """The image `step` places after (or before, if negative) `path` in its folder; None at either end."""
    current = Path(path)
    images = sibling_images(current, extensions)
    try:
        index = [p.name for p in images].index(current.name)
    except ValueError:
        return images[0] if images else None
    target = index + step
    return images[target] if 0 <= target < len(images) else None


def position_in_folder(path: str | Path, extensions: Iterable[str] | None = None) -> tuple[int, int]:
    """(1-based index, count) of `path` among its folder's images; (0, count) when it is not one."""
    current = Path(path)
    names = [p.name for p in sibling_images(current, extensions)]
    return (names.index(current.name) + 1 if current.name in names else 0, len(names))


class RecentFiles:
    """The most recently opened files, newest first, kept in QSettings."""

    def __init__(self, settings: QSettings) -> None:
        self._settings = settings

    def paths(self) -> list[str]:
        value = self._settings.value(RECENT_KEY, [])
        if isinstance(value, str):  # QSettings gives a bare string for a one-item list
            value = [value]
        return [str(v) for v in (value or [])]

    def add(self, path: str | Path) -> list[str]:
        entry = str(Path(path).resolve())
        items = [entry] + [p for p in self.paths() if p != entry]
        self._settings.setValue(RECENT_KEY, items[:MAX_RECENT])
        return items[:MAX_RECENT]

    def remove(self, path: str | Path) -> None:
        self._settings.setValue(RECENT_KEY, [p for p in self.paths() if p != str(path)])

    def clear(self) -> None:
        self._settings.setValue(RECENT_KEY, [])


def open_folder(settings: QSettings) -> str:
    """The folder the Open dialog starts in: the last one an image was opened from, if it still exists; else home."""
    folder = str(settings.value(OPEN_FOLDER_KEY, "") or "")
    return folder if folder and Path(folder).is_dir() else str(Path.home())


def remember_open_folder(settings: QSettings, path: str | Path) -> None:
    """Remember the folder of `path` (an image opened by any route: dialog, drop, recent, next/previous)."""
    settings.setValue(OPEN_FOLDER_KEY, str(Path(path).resolve().parent))
