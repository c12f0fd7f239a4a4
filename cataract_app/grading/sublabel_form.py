"""The sub-label form: one field per sub-label of the active schema, each may stay blank.

The image-only model's predictions pre-fill it as *suggestions* (grey, italic, tagged);
only values the clinician confirmed or entered go to the fusion teacher.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cataract_app import theme
from cataract_app.wheel_guard import guard_inputs
from engine.schema import Schema, SubLabel

UNKNOWN = "(unknown)"
BLANK, SUGGESTED, CONFIRMED = "blank", "suggested", "confirmed"


def pretty_name(name: str) -> str:
    """'pupil_area_obscured' -> 'Pupil area obscured'."""
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


class SubLabelField(QWidget):
    """A combo box (ordinal levels) or a spin box (counts) with a blank 'unknown' choice."""

    edited = Signal(str)  # the sub-label's name, on a change made by the user

    def __init__(self, sub: SubLabel, parent=None) -> None:
        super().__init__(parent)
        self.sub = sub
        self.state = BLANK
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        if sub.kind == "count" and not sub.levels:
            self.editor = QSpinBox()
            self.editor.setRange(sub.minimum - 1, sub.maximum)
            self.editor.setSpecialValueText(UNKNOWN)
            self.editor.setValue(sub.minimum - 1)
            self.editor.valueChanged.connect(self._user_changed)
        else:
            self.editor = QComboBox()
            self.editor.addItem(UNKNOWN, None)
            for v in range(sub.minimum, sub.maximum + 1):
                self.editor.addItem(f"{v} \u00b7 {sub.level_name(v)}" if sub.levels else str(v), v)
            self.editor.activated.connect(self._user_changed)
        self.editor.setToolTip(sub.description)
        self.editor.setMinimumWidth(140)
        self.tag = QLabel("suggested")
        self.tag.setStyleSheet(f"color: {theme.SUGGESTED}; font-style: italic;")
        self.tag.setMinimumWidth(64)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.tag)
        self._apply_style()

    def value(self) -> int | None:
        if isinstance(self.editor, QSpinBox):
            v = self.editor.value()
            return None if v < self.sub.minimum else v
        return self.editor.currentData()

    def set_value(self, value: int | None, state: str) -> None:
        """Set without counting as a user edit; `state` says how the value should look."""
        self.editor.blockSignals(True)
        if isinstance(self.editor, QSpinBox):
            self.editor.setValue(self.sub.minimum - 1 if value is None else value)
        else:
            index = self.editor.findData(value) if value is not None else 0
            self.editor.setCurrentIndex(max(index, 0))
        self.editor.blockSignals(False)
        self.state = BLANK if value is None else state
        self._apply_style()

    def confirm(self) -> None:
        if self.state == SUGGESTED:
            self.state = CONFIRMED
            self._apply_style()

    def _user_changed(self, *_args) -> None:
        self.state = BLANK if self.value() is None else CONFIRMED
        self._apply_style()
        self.edited.emit(self.sub.name)

    def _apply_style(self) -> None:
        suggested = self.state == SUGGESTED
        kind = type(self.editor).__name__
        self.editor.setStyleSheet(f"{kind} {{ color: {theme.SUGGESTED}; font-style: italic; }}" if suggested else "")
        self.tag.setText("suggested" if suggested else "")


class SubLabelForm(QGroupBox):
    """Fields for the active schema plus the buttons that send confirmed values to the teacher."""

    grade_requested = Signal(dict)  # name -> int | None, confirmed values only
    edited = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__("Sub-labels", parent)
        self.fields: dict[str, SubLabelField] = {}
        self._grid = QGridLayout()
        self._grid.setColumnStretch(1, 1)
        self._grid.setVerticalSpacing(4)
        self.hint = QLabel(
            "Grey italic values are suggested by the image-only model and count only once confirmed."
        )
        self.hint.setWordWrap(True)
        self.hint.setObjectName("muted")
        self.reason = QLabel("")
        self.reason.setWordWrap(True)
        self.reason.setObjectName("info")
        self.reason.hide()
        self.accept_button = QPushButton("Accept suggestions")
        self.accept_button.setToolTip("Confirm every suggested value as it stands")
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Blank the values you entered or confirmed; the model's suggestions stay")
        self._suggestions: dict[str, int] = {}  # the image-only model's predictions for this image
        self.grade_button = QPushButton("Grade with sub-labels")
        self.grade_button.setObjectName("primary")
        self.actions_bar = QWidget()  # the window pins it under the scrolling panel, always in view
        buttons = QHBoxLayout(self.actions_bar)
        buttons.setContentsMargins(10, 6, 10, 6)
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        buttons.addWidget(self.grade_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.reason)
        layout.addWidget(self.hint)
        layout.addLayout(self._grid)
        layout.addWidget(self.actions_bar)
        self.accept_button.clicked.connect(self.accept_suggestions)
        self.clear_button.clicked.connect(self.clear)
        self.grade_button.clicked.connect(self._request_grade)
        self._teacher_reason: str | None = "Waiting for the models to load."
        self._has_image = False
        self._update_buttons()

    def set_schema(self, schema: Schema) -> None:
        """Build one row per sub-label, replacing any previous rows."""
        while self._grid.count():
            item = self._grid.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        self.fields, self._suggestions = {}, {}
        for row, sub in enumerate(schema.sublabels):
            label = QLabel(pretty_name(sub.name))
            label.setToolTip(sub.description)
            field = SubLabelField(sub)
            field.edited.connect(self._on_edited)
            self._grid.addWidget(label, row, 0)
            self._grid.addWidget(field, row, 1)
            self.fields[sub.name] = field
        guard_inputs(self)  # a wheel over the form scrolls the panel, never changes a value
        self._update_buttons()

    def set_teacher_available(self, available: bool, reason: str = "") -> None:
        """Enable the teacher path, or disable it and say why."""
        self._teacher_reason = None if available else (reason or "No fusion teacher model is loaded.")
        self.reason.setText(self._teacher_reason or "")
        self.reason.setVisible(not available and bool(reason))
        self._update_buttons()

    def set_has_image(self, has_image: bool) -> None:
        self._has_image = has_image
        self._update_buttons()

    def suggest(self, predicted: dict[str, int]) -> None:
        """Pre-fill blank fields with the student's predictions, marked as suggestions (kept for Clear)."""
        self._suggestions = {n: int(v) for n, v in predicted.items() if v is not None}
        for name, field in self.fields.items():
            if field.state == BLANK and predicted.get(name) is not None:
                field.set_value(int(predicted[name]), SUGGESTED)
        self._update_buttons()

    def accept_suggestions(self) -> None:
        for field in self.fields.values():
            field.confirm()
        self._on_edited()

    def clear(self) -> None:
        """Blank what the clinician entered or confirmed; fields the model predicted show its suggestion again."""
        for name, field in self.fields.items():
            suggestion = self._suggestions.get(name)
            field.set_value(suggestion, SUGGESTED if suggestion is not None else BLANK)
        self._on_edited()

    def reset(self) -> None:
        """Blank every field and forget the suggestions, for a new image, without signalling an edit."""
        self._suggestions = {}
        for field in self.fields.values():
            field.set_value(None, BLANK)
        self._update_buttons()

    def confirmed_values(self) -> dict[str, int | None]:
        """Every sub-label: its confirmed value, or None (blank or only suggested)."""
        return {n: (f.value() if f.state == CONFIRMED else None) for n, f in self.fields.items()}

    def set_value(self, name: str, value: int | None) -> None:
        """Enter a value as the clinician would (for the command line and tests)."""
        self.fields[name].set_value(value, CONFIRMED)
        self._on_edited()

    def set_values(self, values: dict[str, int | None]) -> None:
        """Show values entered earlier (a case's), as confirmed; names the schema lacks are left out."""
        for name, value in values.items():
            if name in self.fields:
                self.fields[name].set_value(value, CONFIRMED)
        self._on_edited()

    def _on_edited(self, *_args) -> None:
        self._update_buttons()
        self.edited.emit()

    def _request_grade(self) -> None:
        if self.grade_button.isEnabled():
            self.grade_requested.emit(self.confirmed_values())

    def _update_buttons(self) -> None:
        teacher = self._teacher_reason is None
        for field in self.fields.values():
            field.setEnabled(teacher)
        any_confirmed = any(v is not None for v in self.confirmed_values().values())
        any_suggested = any(f.state == SUGGESTED for f in self.fields.values())
        self.accept_button.setEnabled(teacher and any_suggested)
        self.clear_button.setEnabled(teacher and any(f.state == CONFIRMED for f in self.fields.values()))
        self.grade_button.setEnabled(teacher and self._has_image and any_confirmed)
        if not teacher:
            tip = self._teacher_reason or ""
        elif not self._has_image:
            tip = "Open an image first."
        elif not any_confirmed:
            tip = "Confirm or enter at least one sub-label first."
        else:
            tip = "Grade this image again with the fusion teacher, using the confirmed sub-labels."
        self.grade_button.setToolTip(tip)
