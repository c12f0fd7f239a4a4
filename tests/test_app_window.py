"""The main window end to end on tiny untrained bundles: open, grade, overlay, errors, navigation."""


import numpy as np
import pytest
from helpers import write_disc
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent

from cataract_app.grading.loading import LoadOptions
from cataract_app.main_window import MainWindow

WAIT_MS = 60_000



@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = [write_disc(folder / f"eye{i}.png", 10 + 6 * i) for i in (1, 2, 3)]
    (folder / "notes.txt").write_text("not an image")
    return paths


@pytest.fixture
def window(qtbot, tiny_bundles, tmp_path):
    student, teacher = tiny_bundles
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(LoadOptions(str(student), str(teacher), "cpu"), settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.summary is not None or w.model_error is not None, timeout=WAIT_MS)
    assert w.model_error is None
    return w


def open_and_wait(qtbot, window, path):
    window.open_path(path)
    qtbot.waitUntil(lambda: window.student is not None and window.student.source == str(path), timeout=WAIT_MS)
    return window.student


def test_opening_an_image_shows_grade_probabilities_overlay_and_model(qtbot, window, images):
    result = open_and_wait(qtbot, window, images[0])
    panel = window.grade_panel
    assert panel.grade_text() == str(result.grade)
    assert 0 <= result.grade <= 7
    assert panel.bars.probabilities() == pytest.approx(result.probabilities)
    assert sum(panel.bars.probabilities()) == pytest.approx(1.0, abs=1e-4)
    assert "tiny-student" in panel.answered_by.text()
    assert "not for clinical use" in panel.banner.text() and not panel.banner.isHidden()
    assert window.view.overlay_shown()
    assert window.summary.student_card.model_id in window.status.model.text()
    assert window.status.device.text() == "Device: cpu"
    assert window.compare.student_col.grade.text() == str(result.grade)
    assert window.recent.paths()[0] == str(images[0].resolve())
    assert window.image_bar.position.text() == "1 of 3 in folder"


def test_overlay_toggle_opacity_and_colour_map(qtbot, window, images):
    open_and_wait(qtbot, window, images[1])
    window.overlay_bar.toggle.setChecked(False)
    assert not window.view.overlay_shown()
    window.actions_by_name["heatmap"].trigger()
    assert window.view.overlay_shown() and window.overlay_bar.toggle.isChecked()
    window.overlay_bar.set_opacity(80)
    assert window.view.overlay_opacity() == pytest.approx(0.8)
    before = window.view._overlay.pixmap().toImage()
    index = window.overlay_bar.colormap.findData("cividis")
    assert index >= 0 and "colour-blind" in window.overlay_bar.colormap.itemText(index)
    window.overlay_bar.colormap.setCurrentIndex(index)
    assert window.view._overlay.pixmap().toImage() != before


def test_a_broken_file_shows_an_error_and_the_app_stays_usable(qtbot, window, images, tmp_path):
    broken = tmp_path / "photos" / "broken.png"
    broken.write_text("this is not a PNG")
    window.open_path(broken)
    qtbot.waitUntil(lambda: "broken.png" in window.status.last_error, timeout=WAIT_MS)
    assert "broken.png" in window.grade_panel.state.text()
    assert window.grade_panel.result() is None and not window.view.has_image()
    assert not window.form.grade_button.isEnabled()
    result = open_and_wait(qtbot, window, images[0])
    assert window.grade_panel.grade_text() == str(result.grade)


def test_switching_images_quickly_ends_with_the_last_images_result(qtbot, window, images):
    shown = []
    window.grade_shown.connect(lambda r: shown.append((window.path, r.source)))
    for path in images + images[:1] + images[2:]:
        window.open_path(path)
    last = str(images[2])
    qtbot.waitUntil(lambda: window.student is not None and window.student.source == last, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.service.pending == 0 and window.reader.pending == 0, timeout=WAIT_MS)
    assert window.grade_panel.result().source == last
    assert all(on_screen == source for on_screen, source in shown)  # never another image's answer


def test_next_previous_and_drop_open_images(qtbot, window, images):
    open_and_wait(qtbot, window, images[0])
    window.activateWindow()
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.student is not None and window.student.source == str(images[1]), timeout=WAIT_MS)
    window.actions_by_name["previous"].trigger()
    qtbot.waitUntil(lambda: window.student is not None and window.student.source == str(images[0]), timeout=WAIT_MS)
    window.step(-1)  # already the first: stays put and says so
    assert window.path == str(images[0]) and "first image" in window.statusBar().currentMessage()
    assert {a.toString() for a in window.actions_by_name["next"].shortcuts()} >= {"Right", "PgDown"}

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(images[2]))])
    event = QDropEvent(QPointF(QPoint(10, 10)), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: window.student is not None and window.student.source == str(images[2]), timeout=WAIT_MS)
    assert window.recent.paths()[:3] == [str(p.resolve()) for p in (images[2], images[0], images[1])]


def test_zoom_keys_and_fit(qtbot, window, images):
    open_and_wait(qtbot, window, images[0])
    fitted = window.view.scale_factor()
    window.actions_by_name["zoom_in"].trigger()
    assert window.view.scale_factor() == pytest.approx(fitted * 1.25)
    window.actions_by_name["zoom_out"].trigger()
    window.actions_by_name["zoom_out"].trigger()
    assert window.view.scale_factor() == pytest.approx(fitted / 1.25)
    window.actions_by_name["fit"].trigger()
    assert window.view.scale_factor() == pytest.approx(fitted)
    assert "Ctrl+=" in [s.toString() for s in window.actions_by_name["zoom_in"].shortcuts()]


def test_an_empty_heat_map_is_explained_not_silent(qtbot, window, images):
    from dataclasses import replace

    from engine.request import GradeRequest

    result = open_and_wait(qtbot, window, images[0])
    empty = replace(result, cam=np.zeros_like(result.cam))
    teacher = GradeRequest(sublabels={}, schema=window.summary.schema)
    window.session.accept(teacher, empty)
    assert "heat map is empty" in window.statusBar().currentMessage()
    window.session.accept(teacher, result)
    assert "heat map is empty" not in window.statusBar().currentMessage()
