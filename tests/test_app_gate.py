"""The lens circle and the input gate in the window: drag the circle and the image is graded with it; a
photograph with problems shows them and no grade until Grade anyway, which the case log records."""

import pytest
from helpers import write_disc
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtTest import QTest

from cataract_app.grading.loading import LoadOptions
from cataract_app.main_window import MainWindow
from engine.cases import CaseLog
from engine.roi import Circle

WAIT_MS = 60_000


@pytest.fixture
def window(qtbot, tiny_bundles, tmp_path):
    student, teacher = tiny_bundles
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(LoadOptions(str(student), str(teacher), "cpu"), settings, cases_db=tmp_path / "cases.sqlite3")
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitUntil(lambda: w.summary is not None or w.model_error is not None, timeout=WAIT_MS)
    assert w.model_error is None
    return w


def graded(qtbot, window, path, source="found"):
    qtbot.waitUntil(lambda: window.student is not None and window.student.source == str(path)
                    and window.student.input.source == source, timeout=WAIT_MS)
    return window.student


def on_screen(window, x: float, y: float) -> QPoint:
    """The viewport point of photograph pixel (x, y) (pixel centres at integers)."""
    return window.view.mapFromScene(x + 0.5, y + 0.5)


def test_dragging_the_circle_grades_again_with_it_and_reset_returns_to_the_found_one(qtbot, window, tmp_path):
    path = write_disc(tmp_path / "eye.png", radius=20, size=96)
    window.open_path(path)
    first = graded(qtbot, window, path)
    found = first.input.circle
    item, bar = window.lens.item, window.lens_bar
    assert item.isVisible() and item.circle() == Circle(float(found.cx), float(found.cy), float(found.r))
    assert abs(found.cx - 48) < 2 and abs(found.r - 20) < 2 and bar.r.value() == round(found.r)
    assert "found" in bar.source.text() and not bar.reset.isEnabled()
    port = window.view.viewport()
    start = on_screen(window, found.cx, found.cy)  # inside: a drag moves the circle
    end = on_screen(window, found.cx - 6, found.cy + 4)
    QTest.mousePress(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for k in range(1, 5):
        QTest.mouseMove(port, start + (end - start) * (k / 4))
    QTest.mouseRelease(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    moved = graded(qtbot, window, path, source="given").input.circle
    assert moved.cx == pytest.approx(found.cx - 6, abs=1.0) and moved.cy == pytest.approx(found.cy + 4, abs=1.0)
    assert moved.r == pytest.approx(found.r, abs=0.01)
    assert window.session.lens == moved and bar.reset.isEnabled() and "placed by you" in bar.source.text()
    assert window.grade_panel.grade_text() == str(window.student.grade)

    rim = on_screen(window, moved.cx + moved.r, moved.cy)  # on the rim: a drag resizes it
    QTest.mousePress(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rim)
    QTest.mouseMove(port, on_screen(window, moved.cx + moved.r + 5, moved.cy))
    QTest.mouseRelease(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       on_screen(window, moved.cx + moved.r + 5, moved.cy))
    qtbot.waitUntil(lambda: window.student is not None and window.student.input.circle.r > moved.r + 3, timeout=WAIT_MS)
    assert window.student.input.circle.cx == pytest.approx(moved.cx, abs=0.01)

    qtbot.mouseClick(bar.reset, Qt.MouseButton.LeftButton)
    back = graded(qtbot, window, path, source="found").input.circle
    assert back == found and window.session.lens is None and not bar.reset.isEnabled()


def test_the_circle_moves_with_the_keys_and_typed_numbers(qtbot, window, tmp_path):
    path = write_disc(tmp_path / "eye.png", radius=18, size=80)
    window.open_path(path)
    found = graded(qtbot, window, path).input.circle
    window.view.setFocus()
    window.lens.item.setFocus()
    for _ in range(3):
        qtbot.keyClick(window.view, Qt.Key.Key_Right)  # the window's next-image key gives way to the circle
    qtbot.keyClick(window.view, Qt.Key.Key_Plus)
    moved = graded(qtbot, window, path, source="given").input.circle
    assert (moved.cx, moved.r) == (pytest.approx(found.cx + 3), pytest.approx(found.r + 1))
    assert window.path == str(path)
    window.lens_bar.r.setValue(12)  # a typed radius
    qtbot.waitUntil(lambda: window.student is not None and window.student.input.circle.r == 12, timeout=WAIT_MS)


def test_a_refused_photograph_shows_its_problems_and_no_grade_until_grade_anyway(qtbot, window, tmp_path):
    path = write_disc(tmp_path / "fundus.png", radius=22, surround=(0, 0, 0))  # a red disc on black: no iris
    refused = []
    window.input_refused.connect(refused.append)
    window.open_path(path)
    box = window.input_box
    qtbot.waitUntil(lambda: bool(refused) and box.isVisible(), timeout=WAIT_MS)
    assert window.student is None and window.grade_panel.grade_text() == "" and window.grade_panel.result() is None
    assert not window.view.has_overlay()  # no heat map either
    assert refused[-1].codes == ["no_lens"] and box.reasons() == refused[-1].reasons
    assert refused[-1].reasons[0] in box.problems.text() and box.button.isVisible()
    assert "No grade is shown" in window.grade_panel.state.text()
    assert window.lens.item.isVisible() and "no lens found" in window.lens_bar.source.text()  # to drag onto it

    qtbot.mouseClick(box.button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.student is not None, timeout=WAIT_MS)
    assert window.grade_panel.grade_text() == str(window.student.grade)
    assert box.isVisible() and not box.button.isVisible() and "Graded anyway" in box.title.text()
    qtbot.waitUntil(window.cases.service.wait_idle, timeout=WAIT_MS)
    with CaseLog.open(window.cases.service.path) as log:
        case = log.find_hash(window.cases.service._hashes[str(path)])
    assert case is not None and case.gate["graded_anyway"] is True and case.gate["ok"] is False
    assert [p["code"] for p in case.gate["problems"]] == ["no_lens"]

    good = write_disc(tmp_path / "eye.png")
    window.open_path(good)
    graded(qtbot, window, good)
    assert not box.isVisible() and window.grade_panel.grade_text() == str(window.student.grade)
    qtbot.waitUntil(window.cases.service.wait_idle, timeout=WAIT_MS)
    with CaseLog.open(window.cases.service.path) as log:
        assert log.find_hash(window.cases.service._hashes[str(good)]).gate["graded_anyway"] is False


def test_alt_g_grades_anyway(qtbot, window, tmp_path):
    path = write_disc(tmp_path / "flat.png", radius=1, surround=(128, 128, 128))
    window.open_path(path)
    qtbot.waitUntil(lambda: window.input_box.isVisible(), timeout=WAIT_MS)
    assert window.input_box.button.toolTip() and window.lens_bar.reset.toolTip()
    qtbot.keyClick(window, Qt.Key.Key_G, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: window.student is not None, timeout=WAIT_MS)
    assert window.session.graded_anyway(window.student)
