"""The photograph with its heat-map layer: zoom with the wheel or keys, pan by dragging."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap, QWheelEvent
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QSizePolicy

ZOOM_STEP = 1.25
MIN_SCALE, MAX_SCALE = 0.02, 40.0
PLACEHOLDER = "Open a photograph with Ctrl+O, or drop one here"


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """An owned QImage copy of an HxWx3 uint8 RGB array."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got {rgb.shape} {rgb.dtype}")
    data = np.ascontiguousarray(rgb)
    h, w = data.shape[:2]
    return QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class ImageView(QGraphicsView):
    """A QGraphicsView holding the photograph and, above it, the heat-map layer."""

    zoom_changed = Signal(float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self._image = QGraphicsPixmapItem()
        self._overlay = QGraphicsPixmapItem()
        self._image.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._overlay.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._overlay.setZValue(1)
        self._scene.addItem(self._image)
        self._scene.addItem(self._overlay)
        self._fit = True
        self.setBackgroundBrush(QColor("#2b2f33"))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAcceptDrops(False)  # the main window takes dropped files

    # ---- content ---------------------------------------------------------------
    def set_image(self, rgb: np.ndarray) -> None:
        """Show a new photograph, drop any old heat map and fit it to the view."""
        self._image.setPixmap(QPixmap.fromImage(rgb_to_qimage(rgb)))
        self._overlay.setPixmap(QPixmap())
        self._scene.setSceneRect(self._image.boundingRect())
        self.fit_to_window()

    def clear(self) -> None:
        self._image.setPixmap(QPixmap())
        self._overlay.setPixmap(QPixmap())
        self.viewport().update()

    def set_overlay(self, rgb: np.ndarray | None) -> None:
        """Show a heat-map layer of the photograph's size, or remove it with None."""
        self._overlay.setPixmap(QPixmap() if rgb is None else QPixmap.fromImage(rgb_to_qimage(rgb)))

    def set_overlay_visible(self, visible: bool) -> None:
        self._overlay.setVisible(visible)

    def set_overlay_opacity(self, opacity: float) -> None:
        self._overlay.setOpacity(max(0.0, min(1.0, opacity)))

    def has_image(self) -> bool:
        return not self._image.pixmap().isNull()

    def has_overlay(self) -> bool:
        return not self._overlay.pixmap().isNull()

    def overlay_shown(self) -> bool:
        """True when a heat map is loaded and visible."""
        return self.has_overlay() and self._overlay.isVisible()

    def overlay_opacity(self) -> float:
        return self._overlay.opacity()

    def drawForeground(self, painter: QPainter, rect) -> None:  # noqa: N802 (Qt override)
        """A hint in the empty view, drawn in view coordinates."""
        if self.has_image():
            return
        painter.save()
        painter.resetTransform()
        painter.setPen(QColor("#aab4be"))
        painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter, PLACEHOLDER)
        painter.restore()

    # ---- zoom ------------------------------------------------------------------
    def scale_factor(self) -> float:
        return self.transform().m11()

    def fit_to_window(self) -> None:
        """Scale the photograph to fill the view; keep doing so on resize until the user zooms."""
        self._fit = True
        if self.has_image():
            self.fitInView(self._image, Qt.AspectRatioMode.KeepAspectRatio)
            self.zoom_changed.emit(self.scale_factor())

    def zoom_by(self, factor: float) -> None:
        current = self.scale_factor()
        target = min(MAX_SCALE, max(MIN_SCALE, current * factor))
        if not self.has_image() or target == current:
            return
        self._fit = False
        self.scale(target / current, target / current)
        self.zoom_changed.emit(self.scale_factor())

    def zoom_in(self) -> None:
        self.zoom_by(ZOOM_STEP)

    def zoom_out(self) -> None:
        self.zoom_by(1 / ZOOM_STEP)

    def actual_size(self) -> None:
        self.zoom_by(1.0 / self.scale_factor())

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt override)
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(ZOOM_STEP**steps)
        event.accept()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        if self._fit:
            self.fit_to_window()
