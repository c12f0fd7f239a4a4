"""File > Open recent: the recent-files list as a menu, refilled each time it opens."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QMenu, QWidget

from cataract_app.viewer.navigation import RecentFiles


class RecentMenu(QMenu):
    """One entry per recent file (newest first) that calls `open_path`, and "Clear list"."""

    def __init__(self, recent: RecentFiles, open_path: Callable[[str], None], parent: QWidget | None = None) -> None:
        super().__init__("Open &recent", parent)
        self.recent, self._open_path = recent, open_path
        self.aboutToShow.connect(self.refill)

    def refill(self) -> None:
        self.clear()
        paths = self.recent.paths()
        for path in paths:
            self.addAction(Path(path).name, lambda p=path: self._open_path(p)).setToolTip(path)
        if paths:
            self.addSeparator()
            self.addAction("Clear list", self.recent.clear)
        else:
            self.addAction("No recent files").setEnabled(False)
