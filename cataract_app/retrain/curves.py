"""A small line chart painted with QPainter (PySide6-Essentials has no QtCharts): axes, grid, legend."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from cataract_app import theme

MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 44, 12, 42, 34
TITLE_H = 18  # the title row; the legend row sits under it


@dataclass
class Series:
    """One line: its name in the legend, colour, points and look."""

    name: str
    color: str
    points: list[tuple[float, float]] = field(default_factory=list)
    width: float = 2.0
    dots: bool = True  # mark each point (epoch values); off for dense batch values


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering lo..hi."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


class LineChart(QWidget):
    """Series of (x, y) points over a fixed or automatic range; repaints when data is added."""

    def __init__(self, title: str, y_range: tuple[float, float] | None = None, parent=None) -> None:
        super().__init__(parent)
        self.title = title
        self.fixed_y = y_range
        self.x_max = 1.0
        self.x_label = "epoch"
        self.series: dict[str, Series] = {}
        self.setMinimumSize(260, 170)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(380, 220)

    def add_series(self, key: str, name: str, color: str, width: float = 2.0, dots: bool = True) -> None:
        self.series[key] = Series(name, color, [], width, dots)

    def add_point(self, key: str, x: float, y: float) -> None:
        if isinstance(y, (int, float)) and math.isfinite(y):
            self.series[key].points.append((float(x), float(y)))
            self.update()

    def set_x_max(self, x_max: float) -> None:
        self.x_max = max(1.0, float(x_max))
        self.update()

    def clear(self) -> None:
        for s in self.series.values():
            s.points.clear()
        self.update()

    def points(self, key: str) -> list[tuple[float, float]]:
        return list(self.series[key].points)

    def y_range(self) -> tuple[float, float]:
        ys = [y for s in self.series.values() for _x, y in s.points]
        if self.fixed_y is not None:
            lo, hi = self.fixed_y
            return (min([lo, *ys]), max([hi, *ys]))
        if not ys:
            return (0.0, 1.0)
        lo, hi = min(ys), max(ys)
        pad = (hi - lo) * 0.08 or max(abs(hi) * 0.1, 0.1)
        bottom = max(0.0, lo - pad) if lo >= 0 else lo - pad  # a loss never needs a negative axis
        return (bottom, hi + pad)

    # ---- painting -------------------------------------------------------------------------------
    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt override)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        plot = QRectF(MARGIN_LEFT, MARGIN_TOP, self.width() - MARGIN_LEFT - MARGIN_RIGHT,
                      self.height() - MARGIN_TOP - MARGIN_BOTTOM)
        if plot.width() < 20 or plot.height() < 20:
            p.end()
            return
        y_lo, y_hi = self.y_range()
        self._draw_frame(p, plot, y_lo, y_hi)
        for s in self.series.values():
            self._draw_series(p, plot, s, y_lo, y_hi)
        self._draw_legend(p, plot)
        p.end()

    def _map(self, plot: QRectF, x: float, y: float, y_lo: float, y_hi: float) -> QPointF:
        fx = x / self.x_max
        fy = (y - y_lo) / ((y_hi - y_lo) or 1.0)
        return QPointF(plot.left() + fx * plot.width(), plot.bottom() - fy * plot.height())

    def _draw_frame(self, p: QPainter, plot: QRectF, y_lo: float, y_hi: float) -> None:
        p.setPen(QColor(theme.TEXT))
        font = p.font()
        font.setBold(True)
        p.setFont(font)
        p.drawText(QRectF(plot.left(), 0, plot.width(), TITLE_H), Qt.AlignmentFlag.AlignLeft, self.title)
        font.setBold(False)
        font.setPointSizeF(max(6.5, font.pointSizeF() * 0.85))
        p.setFont(font)
        grid = QPen(QColor("#e8ebef"))
        for y in nice_ticks(y_lo, y_hi, 5):
            pt = self._map(plot, 0, y, y_lo, y_hi)
            p.setPen(grid)
            p.drawLine(QPointF(plot.left(), pt.y()), QPointF(plot.right(), pt.y()))
            p.setPen(QColor(theme.MUTED))
            p.drawText(QRectF(0, pt.y() - 8, MARGIN_LEFT - 6, 16),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{y:g}")
        for x in nice_ticks(0, self.x_max, min(8, max(1, int(self.x_max)))):
            pt = self._map(plot, x, y_lo, y_lo, y_hi)
            p.setPen(QColor(theme.MUTED))
            p.drawText(QRectF(pt.x() - 20, plot.bottom() + 3, 40, 14), Qt.AlignmentFlag.AlignHCenter, f"{x:g}")
        p.drawText(QRectF(plot.left(), plot.bottom() + 17, plot.width(), 14), Qt.AlignmentFlag.AlignHCenter, self.x_label)
        p.setPen(QPen(QColor(theme.BORDER), 1))
        p.drawRect(plot)

    def _draw_series(self, p: QPainter, plot: QRectF, s: Series, y_lo: float, y_hi: float) -> None:
        if not s.points:
            return
        pts = [self._map(plot, x, y, y_lo, y_hi) for x, y in sorted(s.points)]
        path = QPainterPath(pts[0])
        for pt in pts[1:]:
            path.lineTo(pt)
        color = QColor(s.color)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(color, s.width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin))
        p.drawPath(path)
        if s.dots or len(pts) == 1:
            p.setBrush(color)
            for pt in pts:
                p.drawEllipse(pt, 2.8, 2.8)

    def _draw_legend(self, p: QPainter, plot: QRectF) -> None:
        metrics = p.fontMetrics()
        x, y = plot.left(), TITLE_H + 2
        for s in self.series.values():
            width = metrics.horizontalAdvance(s.name)
            p.setPen(QPen(QColor(s.color), 3))
            p.drawLine(QPointF(x, y + 8), QPointF(x + 14, y + 8))
            p.setPen(QColor(theme.TEXT))
            p.drawText(QRectF(x + 18, y, width + 6, 16), Qt.AlignmentFlag.AlignVCenter, s.name)
            x += width + 34
