"""No wheel event changes a combo box or spin box the user has not focused (clicked or tabbed into).

Scrolling the right-hand panel over the sub-label form must never change a clinical value.
One shared event filter is installed on every such input under a widget (`guard_inputs`);
a guarded input also stops taking focus from the wheel, and an unfocused one passes the
wheel on to its parent, so the panel scrolls instead. Widgets built later call
`guard_inputs` on themselves (the sub-label form after each schema change, the retrain dialog).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QComboBox, QWidget

GUARDED_TYPES = (QComboBox, QAbstractSpinBox)
_PROPERTY = "wheelGuarded"


class WheelGuard(QObject):
    """Swallows (and passes to the parent) wheel events aimed at an input without keyboard focus."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.Wheel and isinstance(watched, GUARDED_TYPES) and not watched.hasFocus():
            event.ignore()  # ignored: Qt offers the wheel to the parent (the scroll area scrolls)
            return True
        return False


_guard: WheelGuard | None = None


def wheel_guard() -> WheelGuard:
    """The one filter of this application (parented to the QApplication, so it lives as long)."""
    global _guard
    if _guard is None:
        _guard = WheelGuard(QApplication.instance())
    return _guard


def guard_input(widget: QWidget) -> None:
    """Guard one combo or spin box: the filter, and a focus policy the wheel cannot take (idempotent)."""
    if widget.property(_PROPERTY):
        return
    widget.installEventFilter(wheel_guard())
    if widget.focusPolicy() == Qt.FocusPolicy.WheelFocus:
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    widget.setProperty(_PROPERTY, True)


def guard_inputs(root: QWidget) -> int:
    """Guard every combo and spin box under `root` (and `root` itself); returns how many are guarded."""
    widgets = [w for cls in GUARDED_TYPES for w in root.findChildren(cls)]
    if isinstance(root, GUARDED_TYPES):
        widgets.append(root)
    for w in widgets:
        guard_input(w)
    return len(widgets)


def is_guarded(widget: QWidget) -> bool:
    return bool(widget.property(_PROPERTY))
