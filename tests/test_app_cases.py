"""The case log in the window, on tiny untrained bundles and a temporary database: record, review, Next, open."""

import hashlib
import os

import pytest
from case_helpers import result, write_image
from helpers import write_disc
from PySide6.QtCore import QSettings, Qt

from cataract_app.grading.loading import LoadOptions
from cataract_app.main_window import MainWindow
from engine.cases import CaseLog
from engine.request import PREDICTED

WAIT_MS = 60_000


@pytest.fixture
def db(tmp_path):
    return tmp_path / "cases.sqlite3"


@pytest.fixture
def window(qtbot, tiny_bundles, tmp_path, db):
    student, teacher = tiny_bundles
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(LoadOptions(str(student), str(teacher), "cpu"), settings, cases_db=db)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.summary is not None or w.model_error is not None, timeout=WAIT_MS)
    assert w.model_error is None
    return w


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    return [write_disc(folder / f"eye{i}.png", 10 + 6 * i) for i in range(3)]


def idle(qtbot, w):
    qtbot.waitUntil(lambda: w.service.pending == 0 and w.reader.pending == 0 and w.cases.service.wait_idle(),
                    timeout=WAIT_MS)


def graded_case(qtbot, w, path):
    """Open `path`, wait for its grade and its case."""
    w.open_path(path)
    qtbot.waitUntil(lambda: w.student is not None and w.student.source == str(path), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: w.session.case is not None, timeout=WAIT_MS)
    idle(qtbot, w)
    return w.session.case


def stored(db, case_id):
    with CaseLog.open(db) as log:
        return log.get(case_id)


def test_grading_records_a_case_and_grading_again_adds_nothing(qtbot, window, photos, db):
    case = graded_case(qtbot, window, photos[0])
    saved = stored(db, case.id)
    assert saved.image_sha256 == hashlib.sha256(photos[0].read_bytes()).hexdigest()
    assert [(a.role, a.model_name, a.grade) for a in saved.answers] == [("student", "tiny-student", window.student.grade)]
    assert saved.status == "open" and f"Case {case.id}" in window.cases.review_box.status.text()
    assert f"Agree: {window.student.grade}" == window.cases.review_box.agree_button.text()
    with qtbot.waitSignal(window.grade_shown, timeout=WAIT_MS):
        window.session.set_target(PREDICTED)  # a new heat map: the same answer again
    idle(qtbot, window)
    graded_case(qtbot, window, photos[1])
    again = graded_case(qtbot, window, photos[0])  # re-opening shows its case
    assert again.id == case.id and len(stored(db, case.id).answers) == 1
    with CaseLog.open(db) as log:
        assert log.count() == 2


def test_reopening_shows_the_case_before_the_grade_arrives(qtbot, window, photos, db):
    first = graded_case(qtbot, window, photos[0])
    graded_case(qtbot, window, photos[1])
    window.service.supersede_all()
    window.open_path(photos[0])
    qtbot.waitUntil(lambda: window.session.case is not None, timeout=WAIT_MS)
    assert window.session.case.id == first.id


def test_the_teacher_adds_an_answer_to_the_same_case_with_the_entered_sublabels(qtbot, window, photos, db):
    case = graded_case(qtbot, window, photos[0])
    window.form.set_value("central_involvement", 2)
    window.form.set_value("sectors_involved", 5)
    window.grade_with_sublabels()
    qtbot.waitUntil(lambda: window.teacher is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: len(window.session.case.answers) == 2, timeout=WAIT_MS)
    saved = stored(db, case.id)
    entered = {n: {"central_involvement": 2, "sectors_involved": 5}.get(n) for n in window.summary.schema.names}
    assert saved.sublabels == entered
    assert (saved.answers[-1].role, saved.answers[-1].sublabels_used) == ("teacher", entered)
    assert "tiny-teacher (image + sub-labels)" in window.cases.review_box.answers.text()


def test_enter_agrees_and_a_digit_corrects_from_the_image_or_the_grade_only(qtbot, window, photos, db):
    case = graded_case(qtbot, window, photos[0])
    model_grade = window.student.grade
    window.activateWindow()
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.session.case.status == "agreed", timeout=WAIT_MS)
    assert stored(db, case.id).final_grade == model_grade
    assert "agreed: grade" in window.cases.review_box.status.text()

    box = window.cases.review_box
    box.note.setFocus()
    qtbot.keyClicks(box.note, "spokes 7 o'clock")  # digits typed in the note are text, not a correction
    field = window.form.fields["sectors_involved"].editor  # nor in the sub-label form
    field.setFocus()
    field.selectAll()
    qtbot.keyClick(field.lineEdit(), Qt.Key.Key_3)
    idle(qtbot, window)
    assert field.value() == 3 and stored(db, case.id).status == "agreed"

    other = (model_grade + 3) % 8
    window.grade_panel.setFocus()
    qtbot.keyClick(window.grade_panel, getattr(Qt.Key, f"Key_{other}"))
    qtbot.waitUntil(lambda: window.session.case.status == "corrected", timeout=WAIT_MS)
    saved = stored(db, case.id)
    assert (saved.final_grade, saved.note, saved.reviewed_by) == (other, "spokes 7 o'clock", window.cases.service.writer.log.user)
    assert f"corrected to {other} (model {model_grade})" in box.status.text()
    assert box.correct_buttons.button(other).isChecked() and box.reopen_button.isEnabled()
    window.actions_by_name["reopen"].trigger()
    qtbot.waitUntil(lambda: window.session.case.status == "open", timeout=WAIT_MS)
    assert [e.action for e in stored(db, case.id).audit][-3:] == ["agree", "correct", "reopen"]


def test_patient_eye_and_visit_are_entered_for_the_case_and_a_bad_date_is_refused(qtbot, window, photos, db):
    case = graded_case(qtbot, window, photos[0])
    box = window.cases.review_box
    box.patient.setText("P-0042")
    box.patient.editingFinished.emit()
    box.eye.setCurrentIndex(2)
    box.eye.activated.emit(2)
    box.visit.setText("2026-05-01")
    box.visit.editingFinished.emit()
    qtbot.waitUntil(lambda: window.session.case.visit_date == "2026-05-01", timeout=WAIT_MS)
    saved = stored(db, case.id)
    assert (saved.patient_id, saved.eye, saved.visit_date) == ("P-0042", "OS", "2026-05-01")
    box.visit.setText("2026-13-01")
    box.visit.editingFinished.emit()
    qtbot.waitUntil(lambda: "is not a date" in window.status.last_error, timeout=WAIT_MS)
    assert "is not a date" in box.warning.text() and stored(db, case.id).visit_date == "2026-05-01"


def answered(w) -> bool:
    """The student answered the image on screen: shown, or held back by the input gate (noise images are)."""
    return w.student is not None or w.session.refused is not None


def _prefilled(db, tmp_path, n=4):
    """n open cases answered by another model, most uncertain last recorded."""
    with CaseLog.open(db) as log:
        ids = []
        for i in range(n):
            probs = tuple(1 / 8 for _ in range(8)) if i == n - 1 else None
            path = write_disc(tmp_path / f"old{i}.png", radius=12 + 3 * i)  # one the input gate lets through
            ids.append(log.record(result(path, grade=i, probs=probs)).id)
        return ids


def test_next_walks_the_open_cases_in_review_order(qtbot, tiny_bundles, tmp_path, db):
    ids = _prefilled(db, tmp_path)
    student, teacher = tiny_bundles
    w = MainWindow(LoadOptions(str(student), str(teacher), "cpu"),
                   QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), cases_db=db)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.summary is not None, timeout=WAIT_MS)
    seen, skip = [], ()
    for step in range(len(ids)):
        with CaseLog.open(db) as log:
            expected = log.next_for_review(1, skip=skip)[0].id
        w.actions_by_name["review_next"].trigger()
        qtbot.waitUntil(lambda: w.session.case is not None and w.session.case.id not in seen, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: answered(w), timeout=WAIT_MS)
        idle(qtbot, w)
        assert w.session.case.id == expected and w.tabs.currentIndex() == 0
        seen.append(expected)
        if step == 1:
            w.cases.agree()  # reviewed: out of the walk for good
            qtbot.waitUntil(lambda: w.session.case.status == "agreed", timeout=WAIT_MS)
        else:
            skip = tuple(sorted({*skip, expected}))  # passed over: not shown again in this walk
    assert seen[0] == ids[-1]  # the uniform answer is the most uncertain
    assert sorted(seen) == sorted(ids)
    w.cases.review_box.next_button.click()
    qtbot.waitUntil(lambda: "passed over are still open" in w.statusBar().currentMessage(), timeout=WAIT_MS)
    assert w.session.walk_skip == set()


def test_opening_a_case_shows_its_answers_and_warns_when_its_file_changed_or_moved(qtbot, window, db, tmp_path):
    ids = _prefilled(db, tmp_path, n=3)
    window.cases.open_case(ids[0])
    qtbot.waitUntil(lambda: window.session.case is not None and answered(window), timeout=WAIT_MS)
    idle(qtbot, window)
    box = window.cases.review_box
    assert window.session.case.id == ids[0] and window.view.has_image() and box.warning.isHidden()
    assert "stu (image only): <b>grade&nbsp;0</b>" in box.answers.text() and "tiny-student" in box.answers.text()

    write_image(tmp_path / "old1.png", seed=999)  # edited since it was graded
    window.cases.open_case(ids[1])
    qtbot.waitUntil(lambda: window.session.case is not None and window.session.case.id == ids[1], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: answered(window), timeout=WAIT_MS)
    idle(qtbot, window)
    assert window.session.case_check.state == "changed" and "has changed since it was graded" in box.warning.text()
    assert not window.session.recording and len(stored(db, ids[1]).answers) == 1
    with CaseLog.open(db) as log:
        assert log.count() == 3  # the edited file was not recorded as a new photograph

    os.unlink(tmp_path / "old2.png")
    window.cases.open_case(ids[2])
    qtbot.waitUntil(lambda: window.session.case is not None and window.session.case.id == ids[2], timeout=WAIT_MS)
    assert window.session.case_check.state == "missing" and not window.view.has_image()
    assert "no longer there" in box.warning.text() and "no longer there" in window.grade_panel.state.text()
    assert box.agree_button.isEnabled()  # the recorded answer can still be reviewed


def test_the_cases_tab_lists_the_graded_images_and_opens_one(qtbot, window, photos, db):
    cases = [graded_case(qtbot, window, p) for p in photos[:2]]
    window.actions_by_name["show_cases"].trigger()
    panel = window.cases.panel
    assert window.tabs.currentWidget() is panel
    qtbot.waitUntil(lambda: panel.model.total == 2, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.model.summary(1) is not None, timeout=WAIT_MS)
    assert [panel.model.summary(r).id for r in range(2)] == [cases[1].id, cases[0].id]
    panel.table.setCurrentIndex(panel.model.index(1, 0))
    panel.table.activated.emit(panel.model.index(1, 0))
    qtbot.waitUntil(lambda: window.tabs.currentIndex() == 0 and window.path == str(photos[0]), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.session.case is not None and window.session.case.id == cases[0].id, timeout=WAIT_MS)


def test_a_case_log_from_a_newer_version_is_refused_with_a_sentence_and_grading_goes_on(qtbot, tiny_bundles,
                                                                                        tmp_path, photos):
    db = tmp_path / "newer.sqlite3"
    with CaseLog.open(db) as log:
        log._conn.execute("PRAGMA user_version = 99")
    before = db.read_bytes()
    student, teacher = tiny_bundles
    w = MainWindow(LoadOptions(str(student), str(teacher), "cpu"),
                   QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), cases_db=db)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.summary is not None and w.cases.service.error is not None, timeout=WAIT_MS)
    w.open_path(photos[0])
    qtbot.waitUntil(lambda: w.student is not None, timeout=WAIT_MS)
    idle(qtbot, w)
    assert "written by a newer Cataract Grader" in w.cases.review_box.status.text()
    assert w.session.case is None and not w.cases.agree()
    assert "cannot be used" in w.cases.panel.count.text()
    w.close()
    assert db.read_bytes() == before  # left as it was
