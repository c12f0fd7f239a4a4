"""The strip under the heat-map controls: the lens circle's numbers, where it came from, Show and Reset.

`LensEditor` joins the strip and the circle in the view to a GradingSession: the session says
which circle to draw (`lens_changed`), the clinician's drag, keys or typed numbers go back as
`session.set_lens`, Reset as `session.reset_lens`. The widgets hold no grading rules.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QCheckBox, QFrame, QHBoxLayout, QLabel, QPushButton, QSpinBox

from cataract_app.session_gate import NOT_FOUND
from cataract_app.viewer.lens_circle import LensCircleItem, attach
from engine.inputs import FOUND, GIVEN
from engine.roi import Circle

SOURCES = {FOUND: "found by the lens finder", GIVEN: "placed by you",
           NOT_FOUND: "no lens found: drag the circle onto it", None: ""}
MAX_PX = 100_000


def _spin(tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(0, MAX_PX)
    box.setSuffix(" px")
    box.setKeyboardTracking(False)  # typed digits count once Enter or Tab ends the edit
    box.setToolTip(tip)
    return box


class LensBar(QFrame):
    """The circle as numbers (editable), its source, a Show toggle and Reset; emits what the user asks."""

    edited = Signal(object)  # Circle typed in
    reset_requested = Signal()
    visibility_changed = Signal(bool)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("toolRow")
        self.toggle = QCheckBox("&Lens circle")
        self.toggle.setChecked(True)
        self.toggle.setToolTip("Show the lens circle the grade was computed in (Alt+L)")
        self.x, self.y = _spin("Centre of the lens, pixels from the left"), _spin("Centre of the lens, pixels from the top")
        self.r = _spin("Radius of the lens in pixels")
        self.r.setMinimum(1)
        self.source = QLabel(SOURCES[None])
        self.source.setObjectName("muted")
        self.reset = QPushButton("R&eset circle")
        self.reset.setToolTip("Back to the circle the lens finder found; the image is graded again (Alt+E)")
        self.reset.setEnabled(False)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 8, 4)
        row.setSpacing(6)
        for w in (self.toggle, QLabel("x"), self.x, QLabel("y"), self.y, QLabel("r"), self.r, self.source):
            row.addWidget(w)
        row.addStretch(1)
        row.addWidget(self.reset)
        self._quiet = False
        self.toggle.toggled.connect(self.visibility_changed)
        self.reset.clicked.connect(self.reset_requested)
        for box in (self.x, self.y, self.r):
            box.valueChanged.connect(self._typed)
        self.show_circle(None, None, False)

    def show_circle(self, circle: Circle | None, source: str | None, has_image: bool) -> None:
        """The circle on screen (None: none found, the fields stay editable to place one)."""
        self.preview(circle)
        self.source.setText(SOURCES.get(source, str(source)) if has_image else "")
        for box in (self.x, self.y, self.r):
            box.setEnabled(has_image)
        self.reset.setEnabled(source == GIVEN)

    def preview(self, circle: Circle | None) -> None:
        """Put the numbers of a circle being dragged in the fields without sending them."""
        if circle is None:
            return
        self._quiet = True
        try:
            self.x.setValue(round(circle.cx))
            self.y.setValue(round(circle.cy))
            self.r.setValue(max(1, round(circle.r)))
        finally:
            self._quiet = False

    def circle(self) -> Circle:
        return Circle(float(self.x.value()), float(self.y.value()), float(self.r.value()))

    def _typed(self, _value: int) -> None:
        if not self._quiet:
            self.edited.emit(self.circle())


class LensEditor(QObject):
    """The view's circle item and the strip, kept in step with a session's lens."""

    def __init__(self, view, bar: LensBar | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent or view)
        self.item: LensCircleItem = attach(view)
        self.bar = bar or LensBar()
        self.session = None
        self._visible = True
        self.bar.visibility_changed.connect(self._set_visible)
        self.item.moving.connect(self.bar.preview)

    def connect(self, session) -> None:
        self.session = session
        session.lens_changed.connect(self.show)
        self.item.edited.connect(self._edited)
        self.bar.edited.connect(self._edited)
        self.bar.reset_requested.connect(session.reset_lens)

    def show(self, circle: Circle | None, source: str | None) -> None:
        """Draw the session's circle; with none found, a circle in the middle to drag onto the lens."""
        image = None if self.session is None else self.session.image
        if circle is None and source == NOT_FOUND and image is not None:
            h, w = image.shape[:2]
            circle = Circle((w - 1) / 2, (h - 1) / 2, min(h, w) / 4)
        if circle is not None:
            self.item.set_circle(circle)
            self.item.setVisible(self._visible)
        else:
            self.item.hide()
        self.bar.show_circle(circle, source, circle is not None)

    def _edited(self, circle: Circle) -> None:
        if self.session is not None and self.session.image is not None:
            self.session.set_lens(circle)

    def _set_visible(self, visible: bool) -> None:
        self._visible = visible
        self.item.setVisible(visible and self.bar.r.isEnabled())
