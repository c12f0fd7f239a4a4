"""Thumbnails for the case table: decoded on a worker thread when a row is first shown, then cached.

Requests wait on a stack, newest first, and only the last few are kept: scrolling fast
through 100,000 rows decodes what is on screen now, not every row that flew past.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage, QPixmap

MAX_WAITING = 48


def make_thumbnail(path: str, size: int) -> QImage:
    """The photograph scaled to fit size x size (QImage may be built off the GUI thread; QPixmap may not)."""
    import cv2

    from cataract_app.viewer.image_view import rgb_to_qimage
    from engine.io import read_image

    rgb = read_image(path)
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return rgb_to_qimage(small)


class Thumbnails(QObject):
    """`get(path)` answers a cached pixmap, or None and starts making it; `ready(path)` says it is there."""

    ready = Signal(str)
    _made = Signal(str, object)  # path, QImage or None (unreadable)

    def __init__(self, size: int = 40, capacity: int = 600, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.size, self.capacity = size, capacity
        self._cache: OrderedDict[str, QPixmap | None] = OrderedDict()  # None: the file could not be read
        self._waiting: list[str] = []  # newest last; guarded by _lock
        self._asked: set[str] = set()  # waiting or being made (GUI thread)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="thumbnails")
        self._made.connect(self._on_made)
        self.made = 0  # thumbnails decoded so far (tests count them)
        self._closed = False

    def get(self, path: str) -> QPixmap | None:
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        if path not in self._asked and not self._closed:
            self._asked.add(path)
            with self._lock:
                self._waiting.append(path)
                dropped = self._waiting[:-MAX_WAITING]
                del self._waiting[:-MAX_WAITING]
            self._asked.difference_update(dropped)  # asked again if their row comes back into view
            self._pool.submit(self._make_newest)
        return None

    def known(self, path: str) -> bool:
        """True once the thumbnail was made, or found unreadable."""
        return path in self._cache

    def shutdown(self) -> None:
        self._closed = True
        with self._lock:
            self._waiting.clear()
        self._pool.shutdown(wait=True)

    def _make_newest(self) -> None:
        with self._lock:
            if not self._waiting:
                return
            path = self._waiting.pop()
        try:
            image = make_thumbnail(path, self.size)
        except Exception:  # noqa: BLE001  (a missing or damaged file has no thumbnail; the detail pane says why)
            image = None
        self._made.emit(path, image)

    def _on_made(self, path: str, image: QImage | None) -> None:
        self._asked.discard(path)
        self.made += 1
        self._cache[path] = None if image is None else QPixmap.fromImage(image)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        self.ready.emit(path)
