"""The Report action, DICOM in the Open dialog, and the patient's history plot, in the window."""

import os
from datetime import date

import pytest
from case_helpers import result, write_image
from clinic_app_helpers import WAIT_MS, graded_case, idle, open_window, run_batch
from dicom_helpers import jpeg_baseline, save, synth_photo, uncompressed
from helpers import write_disc
from pypdf import PdfReader
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QPushButton

from cataract_app.cases.history_plot import HistoryPlot, model_changes, model_starts, series
from cataract_app.cases.report import default_name, report_targets
from engine.cases import CaseLog


@pytest.fixture
def db(tmp_path):
    return tmp_path / "cases.sqlite3"


@pytest.fixture
def window(qtbot, tiny_bundles, tmp_path, db):
    return open_window(qtbot, tiny_bundles, tmp_path, db)


def pages(path):
    return [" ".join(p.extract_text().split()) for p in PdfReader(str(path)).pages]


def report(qtbot, w, out, click=None):
    w.reports.ask_path = lambda _name: str(out)
    with qtbot.waitSignal(w.reports.saved, timeout=WAIT_MS) as blocker:
        (click or w.actions_by_name["report"].trigger)()
    return blocker.args


def test_report_targets_follow_the_tab_and_the_selection():
    assert report_targets(True, [3, 4], 9, "a.png") == [3, 4]
    assert report_targets(False, [3, 4], 9, "a.png") == [9]
    assert report_targets(True, [], None, "a.png") == ["a.png"] and report_targets(False, [], None, None) == []
    assert default_name([7]) == "case-7.pdf" and default_name([1, 2]) == "cases-2.pdf"
    assert default_name(["/x/eye.dcm"]) == "eye-report.pdf"


def test_report_of_the_case_on_screen_uses_its_heat_map(qtbot, window, tmp_path):
    case = graded_case(qtbot, window, write_disc(tmp_path / "eye.png", 20))
    qtbot.waitUntil(lambda: window.session.cam_result is not None and window.session.cam_result.cam is not None,
                    timeout=WAIT_MS)
    grader, calls = window.service.grader, []
    real = grader.grade
    grader.grade = lambda *a, **k: (calls.append(a), real(*a, **k))[1]
    button = next(b for b in window.cases.review_box.findChildren(QPushButton) if b.text() == "Report (PDF)\u2026")
    path, n = report(qtbot, window, tmp_path / "case.pdf", click=button.click)  # the button beside Reopen
    del grader.grade
    assert calls == []  # the page's heat map is the one on screen: nothing was graded again
    assert n == 1 and path == str(tmp_path / "case.pdf")
    (text,) = pages(tmp_path / "case.pdf")
    assert f"case {case.id}" in text.lower() and "tiny-student" in text and "page 1 of 1" in text
    assert "what raises the expected grade" in text  # the heat map on screen (target: severity)
    assert f"Report saved to {path} (1 page)" in window.statusBar().currentMessage()


def test_report_of_the_selected_cases_one_page_each(qtbot, window, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        write_disc(folder / f"e{i}.png", 10 + 5 * i)
    summary = run_batch(qtbot, window, [folder])
    panel = window.cases.panel
    qtbot.waitUntil(lambda: panel.model.total == 3 and panel.model.rowCount() == 3, timeout=WAIT_MS)
    panel.table.selectAll()
    assert sorted(panel.selected_ids()) == sorted(i.case.id for i in summary.recorded)
    _path, n = report(qtbot, window, tmp_path / "three.pdf")
    texts = pages(tmp_path / "three.pdf")
    assert n == 3 and len(texts) == 3 and all(f"page {i + 1} of 3" in t for i, t in enumerate(texts))


def test_a_full_disk_is_said_leaves_the_old_file_and_keeps_the_pages(qtbot, window, tmp_path, monkeypatch):
    graded_case(qtbot, window, write_disc(tmp_path / "eye.png", 20))
    out = tmp_path / "r.pdf"
    out.write_bytes(b"%PDF- the earlier report")
    full = {"on": True}
    real_fsync = os.fsync

    def fsync(fd):
        if full["on"]:
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    asked = []

    def retry(message, name):
        asked.append((message, name))
        full["on"] = False
        return str(tmp_path / "elsewhere.pdf")

    window.reports.ask_retry = retry
    window.reports.ask_path = lambda _name: str(out)
    with qtbot.waitSignal(window.reports.saved, timeout=WAIT_MS) as saved:
        window.actions_by_name["report"].trigger()
    assert asked and "No space left on device" in asked[0][0] and asked[0][1] == "r.pdf"
    assert "The report was not saved" in window.status.last_error
    assert out.read_bytes() == b"%PDF- the earlier report"  # nothing lost
    assert saved.args[0].endswith("elsewhere.pdf") and len(pages(tmp_path / "elsewhere.pdf")) == 1


def test_nothing_to_report_is_said(qtbot, window):
    window.reports.ask_path = lambda _name: pytest.fail("no dialog when there is nothing to report")
    assert not window.reports.report()
    assert "Nothing to report" in window.statusBar().currentMessage()


def test_a_dicom_opens_from_the_open_dialog_and_its_case_takes_the_files_details(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    photo = synth_photo(3, 96)
    plain = save(uncompressed(photo, PatientID="P-77", ImageLaterality="L", StudyDate="20260214"), tmp_path / "a.dcm")
    jpeg = save(jpeg_baseline(synth_photo(4, 96), PatientID="P-77", ImageLaterality="R", StudyDate="20260301"),
                tmp_path / "b.dcm")
    filters = []

    def dialog(_parent, _title, _start, flt):
        filters.append(flt)
        return str(plain), flt

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(dialog))
    window.actions_by_name["open"].trigger()
    assert "*.dcm" in filters[0]
    qtbot.waitUntil(lambda: window.session.case is not None, timeout=WAIT_MS)
    idle(qtbot, window)
    assert window.session.image.shape == (96, 96, 3) and window.student.source == str(plain)
    case = window.session.case
    assert (case.patient_id, case.eye, case.visit_date) == ("P-77", "OS", "2026-02-14")
    case = graded_case(qtbot, window, jpeg)
    assert (case.patient_id, case.eye, case.visit_date) == ("P-77", "OD", "2026-03-01")


def test_a_dicom_without_pixels_is_refused_with_a_sentence(qtbot, window, tmp_path):
    ds = uncompressed(synth_photo(1, 32))
    del ds.PixelData
    bad = save(ds, tmp_path / "nopix.dcm")
    with qtbot.waitSignal(window.error_shown, timeout=WAIT_MS) as blocker:
        window.open_path(bad)
    assert "without pixel data" in blocker.args[0]


def _history_log(tmp_path):
    img = [write_image(tmp_path / f"h{i}.png", seed=i) for i in range(4)]
    with CaseLog.open(tmp_path / "h.sqlite3") as log:
        a = log.record(result(img[0], grade=2), patient_id="P1", eye="OD", visit_date="2025-01-10")
        b = log.record(result(img[1], grade=4), patient_id="P1", eye="OD", visit_date="2025-09-10")
        log.correct(b.id, 5)
        c = log.record(result(img[2], grade=1), patient_id="P1", eye="OS", visit_date="2025-01-10")
        log.record(result(img[3], grade=3), patient_id="P1")
        return log.history("P1"), (a, b, c)


def test_the_history_plot_draws_the_logs_history(qtbot, tmp_path):
    history, (a, b, c) = _history_log(tmp_path)
    data = series(history)
    assert [(p.case_id, p.day, p.model_grade, p.final_grade) for p in data["OD"]] == [
        (a.id, date(2025, 1, 10), 2, None), (b.id, date(2025, 9, 10), 4, 5)]
    assert [p.case_id for p in data["OS"]] == [c.id] and data[None][0].date_is_recorded
    assert model_changes(history) == []  # one model answered every visit: its id over the first visit
    assert model_starts(history) == [(date(2025, 1, 10), "s" * 16)]
    plot = HistoryPlot()
    qtbot.addWidget(plot)
    plot.resize(420, 200)
    plot.set_history(history, b.id)
    assert f"case {b.id}" in plot.toolTip() and "final 5" in plot.toolTip()
    image = plot.grab().toImage()
    colours = {image.pixelColor(x, y).name() for x in range(0, 420, 2) for y in range(0, 200, 2)}
    for wanted in ("#1f5fa8", "#c2571a", "#1d7a3a"):  # OD line, OS line, the final grade's diamond
        assert any(_near(QColor(wanted), QColor(c)) for c in colours), wanted
    plot.set_history(None)
    blank = plot.grab().toImage()
    assert not any(_near(QColor("#1f5fa8"), blank.pixelColor(x, y)) for x in range(0, 420, 4) for y in range(0, 200, 4))


def _near(a: QColor, b: QColor, tol: int = 30) -> bool:
    return abs(a.red() - b.red()) + abs(a.green() - b.green()) + abs(a.blue() - b.blue()) < tol


def test_the_case_detail_shows_the_patients_history(qtbot, window, tmp_path):
    folder = tmp_path / "dicoms"
    folder.mkdir()
    for i, (eye, day) in enumerate((("R", "20250110"), ("R", "20250610"), ("L", "20250610"))):
        save(uncompressed(synth_photo(10 + i, 64), PatientID="P-9", ImageLaterality=eye, StudyDate=day),
             folder / f"v{i}.dcm")
    summary = run_batch(qtbot, window, [folder])
    assert len(summary.recorded) == 3 and {i.case.patient_id for i in summary.recorded} == {"P-9"}
    panel = window.cases.panel
    qtbot.waitUntil(lambda: panel.model.rowCount() == 3, timeout=WAIT_MS)
    target = summary.recorded[1].case.id
    assert panel.select_case(target)
    plot = panel.detail.history
    qtbot.waitUntil(lambda: plot.history is not None, timeout=WAIT_MS)
    assert plot.current == target and len(plot.history) == 3
    assert [p.day.isoformat() for p in plot.series()["OD"]] == ["2025-01-10", "2025-06-10"]
    assert "patient P-9" in panel.detail.history_title.text()
