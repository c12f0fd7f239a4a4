"""The strip under the image: heat-map toggle, what it explains, opacity and colour map."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFrame, QHBoxLayout, QLabel, QSlider

from engine.choices import COLORBLIND_SAFE
from engine.request import PREDICTED, SEVERITY, CamTarget, cam_target

# What the heat map explains: (label, the engine's CamTarget key). The first is the default: on
# single-spoke test photographs it lies on the opacity far more often than the predicted grade's
# map (docs/performance.md).
CAM_TARGETS = (("What raises the grade", SEVERITY.key), ("Predicted grade", PREDICTED.key))


class OverlayBar(QFrame):
    """Controls for the Grad-CAM layer; it emits what the user asks and holds no image."""

    visibility_changed = Signal(bool)
    opacity_changed = Signal(float)
    colormap_changed = Signal(str)
    cam_target_changed = Signal(object)  # the CamTarget chosen

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("toolRow")
        self.toggle = QCheckBox("Heat map")
        self.toggle.setChecked(True)
        self.toggle.setToolTip("Show where the model looked (Grad-CAM). Shortcut: H")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.opacity.setFixedWidth(120)
        self.opacity.setToolTip("Heat-map opacity")
        self.opacity_label = QLabel("45 %")
        self.opacity_label.setObjectName("muted")
        self.opacity_label.setMinimumWidth(36)
        self.explain = QComboBox()
        for label, target in CAM_TARGETS:
            self.explain.addItem(label, target)
        self.explain.setToolTip(
            "Predicted grade: the regions that support the grade shown (for a low grade, mostly clear lens).\n"
            "What raises the grade: the regions that push the expected grade up, i.e. the opacities."
        )
        self.explain.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.colormap = QComboBox()
        self.colormap.setToolTip("Colour map of the heat map (cividis and viridis are colour-blind safe)")
        self.colormap.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.colormap.setEnabled(False)  # until the engine says which maps it has

        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 8, 4)
        row.setSpacing(8)
        for w in (self.toggle, self.explain, QLabel("Opacity"), self.opacity, self.opacity_label, QLabel("Colours"),
                  self.colormap):
            row.addWidget(w)
        row.addStretch(1)

        self.toggle.toggled.connect(self._on_toggled)
        self.opacity.valueChanged.connect(self._on_opacity)
        self.colormap.currentTextChanged.connect(self._on_colormap)
        self.explain.currentIndexChanged.connect(lambda _i: self.cam_target_changed.emit(self.cam_target()))

    def set_colormaps(self, names: Sequence[str], current: str | None = None) -> None:
        """Offer `names`, marking the colour-blind-safe ones, and select `current` if offered."""
        self.colormap.blockSignals(True)
        self.colormap.clear()
        for name in names:
            label = f"{name} (colour-blind safe)" if name in COLORBLIND_SAFE else name
            self.colormap.addItem(label, name)
        index = self.colormap.findData(current) if current else -1
        self.colormap.setCurrentIndex(max(index, 0))
        self.colormap.setEnabled(bool(names) and self.toggle.isChecked())
        self.colormap.blockSignals(False)
        self._on_colormap()

    def cam_target(self) -> CamTarget:
        """What the heat map explains, as the engine's CamTarget."""
        return cam_target(self.explain.currentData())

    def set_cam_target(self, key: str) -> None:
        """Select the target with this key without emitting (restoring a setting); an unknown one selects the default."""
        index = self.explain.findData(key)
        self.explain.blockSignals(True)
        self.explain.setCurrentIndex(max(index, 0))
        self.explain.blockSignals(False)

    def current_colormap(self) -> str | None:
        return self.colormap.currentData()

    def set_opacity(self, percent: int) -> None:
        self.opacity.setValue(percent)

    def _on_toggled(self, checked: bool) -> None:
        self.opacity.setEnabled(checked)
        self.explain.setEnabled(checked)
        self.colormap.setEnabled(checked and self.colormap.count() > 0)
        self.visibility_changed.emit(checked)

    def _on_opacity(self, value: int) -> None:
        self.opacity_label.setText(f"{value} %")
        self.opacity_changed.emit(value / 100.0)

    def _on_colormap(self, *_args) -> None:
        name = self.current_colormap()
        if name:
            self.colormap_changed.emit(name)
