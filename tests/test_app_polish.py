"""The window's safety and comfort: wheel-proof inputs, fit on small screens, Clear, the Open folder, the
retrain dataset path, the grade descriptions."""

import os
from pathlib import Path

import pytest
from helpers import write_disc
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QComboBox, QFileDialog

from cataract_app.grading.loading import LoadOptions
from cataract_app.grading.sublabel_form import BLANK, SUGGESTED
from cataract_app.main_window import MainWindow
from cataract_app.wheel_guard import is_guarded
from engine.schema import DEFAULT_GRADE_DESCRIPTIONS, DEFAULT_SCHEMA

WAIT_MS = 60_000
SCREENS = ((1280, 800), (1366, 768))
SHOTS = os.environ.get("CATARACT_SCREENSHOT_DIR")  # set to keep the window pictures at each screen size


def _settings(tmp_path) -> QSettings:
    """A settings scope of this test's own (an INI file in tmp_path): the user's settings stay untouched."""
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def _window(qtbot, tiny_bundles, settings) -> MainWindow:
    student, teacher = tiny_bundles
    w = MainWindow(LoadOptions(str(student), str(teacher), "cpu"), settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.summary is not None or w.model_error is not None, timeout=WAIT_MS)
    assert w.model_error is None
    return w


@pytest.fixture
def window(qtbot, tiny_bundles, tmp_path):
    return _window(qtbot, tiny_bundles, _settings(tmp_path))


def _open(qtbot, window, path):
    window.open_path(path)
    qtbot.waitUntil(lambda: window.student is not None and window.student.source == str(path), timeout=WAIT_MS)
    return window.student


def _wheel(widget, steps: int = 3) -> None:
    """Turn the wheel `steps` notches over the middle of `widget`, down then up."""
    centre = QPointF(widget.rect().center())
    for delta in (-120, 120):
        for _ in range(steps):
            event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, delta),
                                Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                                False)
            QApplication.sendEvent(widget, event)


def _value(widget):
    return widget.currentIndex() if isinstance(widget, QComboBox) else widget.value()


def _inputs(root) -> list:
    return [w for cls in (QComboBox, QAbstractSpinBox) for w in root.findChildren(cls)]


def _set_middle(widget) -> None:
    """Put an input in the middle of its range, so that a wheel turn either way would change it."""
    if isinstance(widget, QComboBox):
        widget.setCurrentIndex(widget.count() // 2)
    else:
        widget.setValue((widget.minimum() + widget.maximum()) / 2)


def test_no_wheel_event_changes_an_input_that_has_no_focus(qtbot, window, tmp_path):
    _open(qtbot, window, write_disc(tmp_path / "eye.png", 20))
    window.actions_by_name["retrain"].trigger()  # the retrain dialog's settings too
    roots = [window, window.training.retrain_dialog]
    inputs = [w for root in roots for w in _inputs(root)]
    assert len(inputs) >= 12  # the sub-label fields, the overlay and cases choices, the retrain settings
    assert any(w in window.form.findChildren(QAbstractSpinBox) for w in inputs)  # sectors_involved, a spin box
    window.setFocus()
    states = lambda: {n: f.state for n, f in window.form.fields.items()}  # noqa: E731
    for w in inputs:
        assert is_guarded(w), w.objectName() or type(w).__name__
        assert w.focusPolicy() != Qt.FocusPolicy.WheelFocus
        _set_middle(w)
        before, marked = _value(w), states()
        assert not w.hasFocus()
        _wheel(w)
        assert _value(w) == before, f"a wheel turn changed an unfocused {type(w).__name__} ({w.toolTip()[:40]})"
        assert states() == marked  # no sub-label became 'confirmed' by the wheel


def test_a_focused_input_still_takes_the_wheel(qtbot, window):
    spin = window.form.fields["sectors_involved"].editor
    spin.setEnabled(True)
    spin.setValue(4)
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=5000)
    event = QWheelEvent(QPointF(5, 5), QPointF(spin.mapToGlobal(QPoint(5, 5))), QPoint(0, 0), QPoint(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(spin, event)
    assert spin.value() == 5  # the guard lets a focused box be wheeled, as the user expects


def test_a_new_schema_builds_guarded_fields(qtbot, window):
    window.form.set_schema(DEFAULT_SCHEMA)
    assert window.form.fields and all(is_guarded(f.editor) for f in window.form.fields.values())


@pytest.mark.parametrize("size", SCREENS, ids=[f"{w}x{h}" for w, h in SCREENS])
def test_grade_with_sub_labels_is_visible_without_scrolling(qtbot, window, tmp_path, size):
    _open(qtbot, window, write_disc(tmp_path / "eye.png", 20))
    window.showNormal()
    window.resize(*size)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == size, timeout=5000)
    QApplication.processEvents()
    button = window.form.grade_button
    assert button.isVisible()
    top_left = button.mapTo(window, QPoint(0, 0))
    assert window.rect().contains(top_left) and window.rect().contains(top_left + QPoint(button.width() - 1,
                                                                                     button.height() - 1))
    assert not window.right_panel.isAncestorOf(button)  # pinned under the scrolling panel: no scroll hides it
    assert button.visibleRegion().boundingRect().size() == button.size()  # nothing covers or clips it
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        assert window.grab().save(str(Path(SHOTS) / f"window-{size[0]}x{size[1]}.png"))


def test_clear_blanks_the_clinicians_values_and_keeps_the_suggestions(qtbot, window, tmp_path):
    result = _open(qtbot, window, write_disc(tmp_path / "eye.png", 20))
    form = window.form
    predicted = result.sublabels_predicted
    assert predicted and all(form.fields[n].state == SUGGESTED for n in predicted)
    name = next(iter(predicted))
    other = next(n for n in form.fields if n != name)
    form.set_value(name, form.fields[name].sub.maximum)
    form.set_value(other, form.fields[other].sub.minimum)
    assert form.clear_button.isEnabled()
    form.clear_button.click()
    assert form.confirmed_values() == dict.fromkeys(form.fields)
    for n, f in form.fields.items():
        assert (f.state, f.value()) == ((SUGGESTED, predicted[n]) if n in predicted else (BLANK, None))
    assert not form.clear_button.isEnabled()  # nothing of the clinician's is left to clear
    assert form.accept_button.isEnabled()


def test_the_open_dialog_starts_in_the_last_folder_used(qtbot, tiny_bundles, tmp_path, monkeypatch):
    settings = _settings(tmp_path)
    first = _window(qtbot, tiny_bundles, settings)
    starts = []
    folder = tmp_path / "clinic" / "monday"
    folder.mkdir(parents=True)
    image = write_disc(folder / "eye.png", 20)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (starts.append(a[2]), (str(image), ""))[1])
    first.open_dialog()
    assert starts == [str(Path.home())]  # nothing opened yet in this settings scope
    qtbot.waitUntil(lambda: first.student is not None, timeout=WAIT_MS)
    first.close()
    again = _window(qtbot, tiny_bundles, _settings(tmp_path))  # the next session, same settings
    again.open_dialog()
    assert starts[1] == str(folder.resolve())
    dropped = tmp_path / "other"
    dropped.mkdir()
    _open(qtbot, again, write_disc(dropped / "b.png", 20))  # any route of opening counts (drop, recent, next)
    again.open_dialog()
    assert starts[2] == str(dropped.resolve())


def test_the_retrain_dataset_path_can_be_typed_and_is_checked(qtbot, window, tiny_dataset, tmp_path):
    window.actions_by_name["retrain"].trigger()
    panel = window.training.retrain_dialog
    box = panel.dataset_box
    assert not box.path.isReadOnly()
    for typed, words in ((tmp_path / "nowhere", "no folder"), (tmp_path, "no labels.csv"),
                         (tiny_dataset / "labels.csv", None)):
        box.path.setText(str(typed))
        qtbot.keyClick(box.path, Qt.Key.Key_Return)
        if words:
            assert words in box.verdict.text() and panel.dataset is None
    assert panel.dataset == Path(tiny_dataset).resolve()  # labels.csv typed: its folder is the dataset
    qtbot.waitUntil(lambda: panel.report is not None, timeout=WAIT_MS)
    assert "Ready" in box.verdict.text() or "problem" in box.verdict.text()


def test_the_grade_panel_says_what_each_grade_means(qtbot, window, tmp_path):
    result = _open(qtbot, window, write_disc(tmp_path / "eye.png", 20))
    panel = window.grade_panel
    meaning = window.summary.schema.grade_descriptions[result.grade]
    assert meaning and panel.description.text() == meaning and not panel.description.isHidden()
    assert meaning in panel.grade.toolTip()
    for g, text in enumerate(DEFAULT_GRADE_DESCRIPTIONS):
        assert f"{g} \u2013 {text}" in panel.title.toolTip()
        assert f"Grade {g}: " in panel.bars.toolTip() and text in panel.bars.toolTip()
    custom = tuple(f"clinic wording {g}" for g in range(8))
    panel.set_grade_descriptions(custom)  # a clinic's schema.json says it in its own words
    assert panel.description.text() == f"clinic wording {result.grade}"
    assert "clinic wording 7" in panel.bars.toolTip()

