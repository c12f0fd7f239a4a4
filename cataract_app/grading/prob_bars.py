"""Horizontal probability bars for the eight grades, the chosen one in the accent colour."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from cataract_app import theme

ROW_HEIGHT = 18
LABEL_WIDTH = 22
VALUE_WIDTH = 48


class ProbabilityBars(QWidget):
    """Paints one bar per grade; empty until `set_probabilities` is called."""

    def __init__(self, num_grades: int = 8, parent=None) -> None:
        super().__init__(parent)
        self._probs: tuple[float, ...] = ()
        self._highlight: int | None = None
        self._num = num_grades
        self._descriptions: tuple[str, ...] = ()
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(200)
        self.setFixedHeight(self._num * ROW_HEIGHT + 4)

    def set_probabilities(self, probs: Sequence[float], highlight: int | None = None) -> None:
        self._probs = tuple(float(p) for p in probs)
        self._highlight = highlight
        self._update_tooltip()
        self.update()

    def set_descriptions(self, descriptions: Sequence[str]) -> None:
        """What each grade means, added to the tooltip's line for that grade."""
        self._descriptions = tuple(descriptions)
        self._update_tooltip()

    def _update_tooltip(self) -> None:
        lines = []
        for k in range(self._num):
            prob = f": {self._probs[k] * 100:.1f} %" if k < len(self._probs) else ""
            meaning = f" \u2013 {self._descriptions[k]}" if k < len(self._descriptions) and self._descriptions[k] else ""
            lines.append(f"Grade {k}{prob}{meaning}")
        self.setToolTip("\n".join(lines) if self._probs or self._descriptions else "")

    def clear(self) -> None:
        self.set_probabilities((), None)

    def probabilities(self) -> tuple[float, ...]:
        return self._probs

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(280, self._num * ROW_HEIGHT + 4)

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt override)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(self.font())
        p.setFont(font)
        track_w = max(10, self.width() - LABEL_WIDTH - VALUE_WIDTH - 8)
        for k in range(self._num):
            y = 2 + k * ROW_HEIGHT
            value = self._probs[k] if k < len(self._probs) else 0.0
            chosen = k == self._highlight
            p.setPen(QColor(theme.TEXT if chosen else theme.MUTED))
            p.drawText(QRectF(0, y, LABEL_WIDTH, ROW_HEIGHT), Qt.AlignmentFlag.AlignVCenter, str(k))
            track = QRectF(LABEL_WIDTH, y + 4, track_w, ROW_HEIGHT - 8)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor("#eef1f4"))
            p.drawRoundedRect(track, 3, 3)
            if value > 0:
                fill = QRectF(track.x(), track.y(), max(2.0, track_w * min(1.0, value)), track.height())
                p.setBrush(QColor(theme.ACCENT if chosen else "#9aa8b6"))
                p.drawRoundedRect(fill, 3, 3)
            if self._probs:
                p.setPen(QColor(theme.TEXT if chosen else theme.MUTED))
                text_rect = QRectF(LABEL_WIDTH + track_w + 4, y, VALUE_WIDTH, ROW_HEIGHT)
                p.drawText(text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, f"{value * 100:.0f} %")
        p.end()
