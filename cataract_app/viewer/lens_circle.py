"""The lens circle over the photograph: drag inside it to move it, drag its rim (or the handle) to resize it.

The item lives in the image view's scene, whose units are the photograph's pixels; a Circle
puts pixel centres at integers, the scene at half-integers, so the two differ by half a
pixel. Keys, when the circle has focus (click it or Tab to the view): arrows move it one
pixel (Shift: ten), + and - change the radius; the edit is sent once the keys rest.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsObject, QGraphicsView

from engine.roi import Circle

RIM_GRAB_PX = 8  # screen pixels either side of the rim that start a resize
MIN_RADIUS = 2.0
KEY_REST_MS = 600
_MOVES = {Qt.Key.Key_Left: (-1, 0), Qt.Key.Key_Right: (1, 0), Qt.Key.Key_Up: (0, -1), Qt.Key.Key_Down: (0, 1)}
_GROW = {Qt.Key.Key_Plus: 1, Qt.Key.Key_Equal: 1, Qt.Key.Key_Minus: -1, Qt.Key.Key_Underscore: -1}


class LensCircleItem(QGraphicsObject):
    """An editable circle; `moving` reports every step of a drag, `edited` the circle the user settled on."""

    moving = Signal(object)  # Circle, while dragging
    edited = Signal(object)  # Circle, on release (or once the keys rest)

    def __init__(self) -> None:
        super().__init__()
        self._circle = Circle(0.0, 0.0, 1.0)
        self._mode: str | None = None  # "move" | "resize" while a drag runs
        self._grab = QPointF()
        self._start = self._circle
        self.setZValue(2)
        self.setAcceptHoverEvents(True)
        self.setFlag(QGraphicsObject.GraphicsItemFlag.ItemIsFocusable, True)
        self.setToolTip("The lens circle the grade was computed in. Drag inside to move it, drag the rim to resize it; "
                        "arrow keys move it, + and - resize it. The image is graded again with your circle.")
        self._keys = QTimer(self)
        self._keys.setSingleShot(True)
        self._keys.setInterval(KEY_REST_MS)
        self._keys.timeout.connect(lambda: self.edited.emit(self._circle))
        self.hide()

    # ---- the circle -------------------------------------------------------------------
    def circle(self) -> Circle:
        return self._circle

    def set_circle(self, circle: Circle | None) -> None:
        """Show `circle` (pixels of the photograph), or hide the item with None."""
        if circle is None:
            self.hide()
            return
        self.prepareGeometryChange()
        self._circle = Circle(float(circle.cx), float(circle.cy), float(circle.r))
        self.show()
        self.update()

    def centre_in_scene(self) -> QPointF:
        return QPointF(self._circle.cx + 0.5, self._circle.cy + 0.5)

    def _place(self, circle: Circle) -> None:
        self.set_circle(circle)
        self.moving.emit(self._circle)

    # ---- painting ---------------------------------------------------------------------
    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        c, pad = self._circle, self._circle.r * 0.1 + 12
        return QRectF(c.cx + 0.5 - c.r - pad, c.cy + 0.5 - c.r - pad, 2 * (c.r + pad), 2 * (c.r + pad))

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        c, grab = self._circle, self._grab_width()
        path.addEllipse(self.centre_in_scene(), c.r + grab, c.r + grab)
        return path

    def paint(self, painter: QPainter, _option, _widget=None) -> None:
        c, centre = self._circle, self.centre_in_scene()
        focus = self.hasFocus() or self._mode is not None
        for colour, width in ((QColor(0, 0, 0, 150), 4), (QColor("#ffe14d") if focus else QColor("#4de1ff"), 2)):
            pen = QPen(colour, width)
            pen.setCosmetic(True)  # the same thickness at every zoom
            if colour.alpha() == 255 and self._mode is None and not focus:
                pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(centre, c.r, c.r)
        arm = self._grab_width()
        painter.drawLine(QPointF(centre.x() - arm, centre.y()), QPointF(centre.x() + arm, centre.y()))
        painter.drawLine(QPointF(centre.x(), centre.y() - arm), QPointF(centre.x(), centre.y() + arm))
        handle = self._handle()
        painter.setBrush(painter.pen().color())
        painter.drawEllipse(handle, arm * 0.6, arm * 0.6)

    def _handle(self) -> QPointF:
        """The resize handle, on the rim at the lower right."""
        c, d = self.centre_in_scene(), self._circle.r / math.sqrt(2)
        return QPointF(c.x() + d, c.y() + d)

    def _grab_width(self) -> float:
        """RIM_GRAB_PX screen pixels in scene units at the view's zoom."""
        views = self.scene().views() if self.scene() else []
        scale = views[0].transform().m11() if views else 1.0
        return RIM_GRAB_PX / max(scale, 1e-6)

    # ---- mouse ------------------------------------------------------------------------
    def _mode_at(self, pos: QPointF) -> str:
        c = self.centre_in_scene()
        d = math.hypot(pos.x() - c.x(), pos.y() - c.y())
        handle = self._handle()
        near_handle = math.hypot(pos.x() - handle.x(), pos.y() - handle.y()) <= 1.5 * self._grab_width()
        return "resize" if near_handle or abs(d - self._circle.r) <= self._grab_width() else "move"

    def hoverMoveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        resize = self._mode_at(event.pos()) == "resize"
        self.setCursor(Qt.CursorShape.SizeFDiagCursor if resize else Qt.CursorShape.SizeAllCursor)

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if event.button() != Qt.MouseButton.LeftButton:
            event.ignore()
            return
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        self._mode, self._grab, self._start = self._mode_at(event.pos()), event.pos(), self._circle
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        s, pos = self._start, event.pos()
        if self._mode == "move":
            d = pos - self._grab
            self._place(Circle(s.cx + d.x(), s.cy + d.y(), s.r))
        elif self._mode == "resize":
            r = math.hypot(pos.x() - (s.cx + 0.5), pos.y() - (s.cy + 0.5))
            self._place(Circle(s.cx, s.cy, max(MIN_RADIUS, r)))

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self._mode is not None:
            self._mode = None
            self.update()
            if self._circle != self._start:
                self.edited.emit(self._circle)
        event.accept()

    # ---- keys -------------------------------------------------------------------------
    def sceneEvent(self, event) -> bool:  # noqa: N802 (Qt override)
        # The window's arrow-key shortcuts (next / previous image) give way while the circle has focus.
        if event.type() == QEvent.Type.ShortcutOverride and (event.key() in _MOVES or event.key() in _GROW):
            event.accept()
            return True
        return super().sceneEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        step = 10.0 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1.0
        c = self._circle
        if event.key() in _MOVES:
            dx, dy = _MOVES[event.key()]
            self._place(Circle(c.cx + dx * step, c.cy + dy * step, c.r))
        elif event.key() in _GROW:
            self._place(Circle(c.cx, c.cy, max(MIN_RADIUS, c.r + _GROW[event.key()] * step)))
        else:
            event.ignore()
            return
        self._keys.start()
        event.accept()


def attach(view: QGraphicsView) -> LensCircleItem:
    """A hidden lens circle in `view`'s scene, above the photograph and its heat map."""
    item = LensCircleItem()
    view.scene().addItem(item)
    return item
