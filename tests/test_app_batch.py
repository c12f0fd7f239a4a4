"""Batch grading in the window: progress, Cancel, every graded file in the case log, the summary, drops, the CSV."""

import csv
import threading

import cv2
import numpy as np
import pytest
from clinic_app_helpers import WAIT_MS, open_window, run_batch
from helpers import write_disc
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from cataract_app.batch.bar import progress_text, summary_headline
from cataract_app.batch.files import expand_inputs, folder_images
from cataract_app.batch.job import run_batch as run_job
from engine.batch import BatchProgress
from engine.cases import CaseLog
from engine.progress import CancelToken


@pytest.fixture
def db(tmp_path):
    return tmp_path / "cases.sqlite3"


@pytest.fixture
def window(qtbot, tiny_bundles, tmp_path, db):
    return open_window(qtbot, tiny_bundles, tmp_path, db)


def folder_of(tmp_path, n, broken=0, name="visit"):
    folder = tmp_path / name
    (folder / "sub").mkdir(parents=True)
    for i in range(n):
        write_disc((folder / "sub" if i % 2 else folder) / f"eye{i:02d}.png", 8 + i % 14)
    for i in range(broken):
        (folder / f"broken{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_expand_inputs_matches_predict_dir_and_names_what_it_leaves_out(tmp_path):
    folder = folder_of(tmp_path, 4, broken=1)
    listed = folder_images(folder)
    assert len(listed) == 5 and listed == sorted(listed) and all(p.endswith(".png") for p in listed)
    inputs = expand_inputs([folder, folder / "notes.txt", listed[0], tmp_path / "gone.png"])
    assert inputs.files == tuple(listed)  # the folder's files once, in its order
    assert any("notes.txt was left out" in p for p in inputs.problems)
    assert any("gone.png does not exist" in p for p in inputs.problems)
    assert "holds no image" in expand_inputs([tmp_path / "visit" / "sub" / "eye01.png", folder_of(tmp_path, 0, name="e")]
                                             ).problems[0]


def test_batch_grades_a_folder_into_the_case_log_with_progress_and_a_summary(qtbot, window, tmp_path, db):
    folder = folder_of(tmp_path, 6, broken=1)
    cv2.imwrite(str(folder / "dark.png"), np.zeros((64, 64, 3), np.uint8))  # graded, with the gate's problems
    seen = []
    window.batch.bar.show_progress = lambda p, show=window.batch.bar.show_progress: (seen.append(p), show(p))
    window.cases.panel.show_patient("SOMEONE-ELSE")
    summary = run_batch(qtbot, window, [folder])
    assert window.tabs.currentIndex() == 1  # the Cases tab fills as the results arrive
    assert window.cases.panel.current_filter().patient_id is None  # a filter that hid them is cleared
    assert [p.done for p in seen] == [*range(9), 8] and seen[-1].finished and seen[-1].failed == 1
    assert summary.total == 8 and len(summary.recorded) == 7 and not summary.cancelled
    assert [i.path for i in summary.failed] == [str(folder / "broken0.png")]
    assert "cannot read" in summary.failed[0].error or "damaged" in summary.failed[0].error
    with CaseLog.open(db) as log:
        assert log.count() == 7
        paths = {log.get(i.case.id).image_path for i in summary.recorded}
    assert paths == {i.path for i in summary.recorded}
    bar = window.batch.bar
    headline = bar.title.text()
    assert "7 of 8 photographs graded into the case log" in headline and "1 failed" in headline
    assert "broken0.png" in bar.details.text() and bar.close_button.isVisible() and not bar.cancel_button.isVisible()
    flagged = {i.path: i.result.input_problems for i in summary.input_problems}
    assert any("under-exposed" in p for p in flagged[str(folder / "dark.png")])  # graded and recorded all the same
    assert f"{len(flagged)} with input problems" in headline and "under-exposed" in bar.details.text()
    qtbot.waitUntil(lambda: window.cases.panel.model.total == 7, timeout=WAIT_MS)
    assert "7 cases" in window.cases.panel.count.text()


def test_progress_counts_and_eta_are_said(qtbot):
    p = BatchProgress(done=10, total=40, failed=1, elapsed_s=5.0)
    assert p.eta_s == pytest.approx(15.0)
    assert progress_text(p) == "10 of 40 files \u00b7 1 failed \u00b7 about 15 s left"
    assert "starting" in progress_text(BatchProgress(0, 40, 0, 0.0))
    assert "stopped after 1 min 05 s" in progress_text(BatchProgress(3, 40, 0, 65.0, cancelled=True, finished=True))


def test_cancel_stops_after_the_current_file_and_keeps_what_was_graded(tiny_bundles, tmp_path, db):
    """run_batch itself: a cancel from the first item's callback stops the batch after that item."""
    from engine.infer import Grader

    folder = folder_of(tmp_path, 30)
    files = folder_images(folder)
    grader = Grader(tiny_bundles[0], device="cpu")
    token, items, progress = CancelToken(), [], []

    def on_item(item):
        items.append(item)
        token.cancel()

    CaseLog.open(db).close()
    summary = run_job(files, lambda: grader, threading.Lock(), lambda: CaseLog.open(db), token, on_item,
                      progress.append, chunk=12, batch_size=4)
    assert summary.cancelled and len(summary.items) == 1 and summary.not_reached == 29
    assert progress[-1].finished and progress[-1].cancelled and progress[-1].done == 1
    with CaseLog.open(db) as log:
        assert log.count() == 1 and log.find_image(files[0]) is not None
    assert "cancelled, 29 not graded" in summary_headline(summary)


def test_cancel_in_the_window_keeps_the_graded_cases(qtbot, window, tmp_path, db):
    folder = folder_of(tmp_path, 60)
    with qtbot.waitSignal(window.batch.finished, timeout=WAIT_MS) as blocker:
        assert window.batch.grade([folder])
        window.batch.job.item_done.connect(lambda _item: window.batch.bar.cancel_button.click())
    summary = blocker.args[0]
    assert summary.cancelled and 1 <= len(summary.items) < 60
    with CaseLog.open(db) as log:
        assert log.count() == len(summary.recorded)
    assert "cancelled" in window.batch.bar.title.text()
    assert not window.batch.running


def test_nothing_to_grade_and_a_second_batch_are_refused_with_a_sentence(qtbot, window, tmp_path):
    assert not window.batch.grade([tmp_path / "nothing-here"])
    assert window.status.last_error.startswith("Nothing to grade:") and "does not exist" in window.status.last_error
    folder = folder_of(tmp_path, 40)
    with qtbot.waitSignal(window.batch.finished, timeout=WAIT_MS):
        assert window.batch.grade([folder])
        assert not window.batch.grade([folder])  # one batch at a time
        assert "A batch is being graded" in window.statusBar().currentMessage()


def test_dropping_several_files_grades_them_and_one_file_opens_it(qtbot, window, tmp_path, db):
    folder = folder_of(tmp_path, 3)
    files = folder_images(folder)

    def drop(paths):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
        event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                           Qt.KeyboardModifier.NoModifier)
        window.dropEvent(event)

    with qtbot.waitSignal(window.batch.finished, timeout=WAIT_MS) as blocker:
        drop(files[:2])
    assert len(blocker.args[0].recorded) == 2
    with qtbot.waitSignal(window.batch.finished, timeout=WAIT_MS) as blocker:
        drop([folder])
    assert len(blocker.args[0].recorded) == 3  # two of them again: their cases, one more answer at most
    drop([files[2]])
    qtbot.waitUntil(lambda: window.student is not None and window.student.source == files[2], timeout=WAIT_MS)
    with CaseLog.open(db) as log:
        assert log.count() == 3


def test_the_batch_csv_is_the_one_predict_dir_writes(qtbot, window, tiny_bundles, tmp_path):
    from engine.cli import main

    folder = folder_of(tmp_path, 4, broken=1)
    run_batch(qtbot, window, [folder])
    window.batch.ask_csv_path = lambda: str(tmp_path / "app.csv")
    assert window.batch.save_csv() == tmp_path / "app.csv"
    assert main(["predict", "--dir", str(folder), "--model", str(tiny_bundles[0]), "--device", "cpu",
                 "--csv", str(tmp_path / "cli.csv")]) == 0
    app_rows = list(csv.DictReader((tmp_path / "app.csv").open()))
    cli_rows = list(csv.DictReader((tmp_path / "cli.csv").open()))
    # predict --dir also gives the file it cannot read a row that says why; the app names it when it is dropped
    (left_out,) = [r for r in cli_rows if r["file"].endswith("notes.txt")]
    assert "extension '.txt'" in left_out["error"] and left_out["grade"] == ""
    cli_rows.remove(left_out)
    assert app_rows[0].keys() == cli_rows[0].keys() and len(app_rows) == 5
    assert app_rows == cli_rows  # same files, grades, probabilities, gate columns and errors


class CountingLock:
    """A lock that counts how often it was taken (run_batch takes it once per chunk)."""

    def __init__(self):
        self.lock, self.taken = threading.Lock(), 0

    def __enter__(self):
        self.lock.acquire()
        self.taken += 1

    def __exit__(self, *exc):
        self.lock.release()


def test_the_grader_is_taken_one_chunk_at_a_time(tiny_bundles, tmp_path, db):
    """Between two chunks the lock is free, so an image opened during a batch is graded before its end."""
    from engine.infer import Grader

    files = folder_images(folder_of(tmp_path, 10))
    grader, lock = Grader(tiny_bundles[0], device="cpu"), CountingLock()
    free_between = []
    summary = run_job(files, lambda: grader, lock, lambda: CaseLog.open(db), CancelToken(),
                      lambda item: item.index % 4 == 0 and free_between.append(lock.lock.locked()), lambda _p: None,
                      chunk=4, batch_size=2)
    assert len(summary.recorded) == 10 and lock.taken == 3 and not lock.lock.locked()
    assert free_between == [True, True, True]  # held while each chunk grades
    assert [i.index for i in summary.items] == list(range(10))  # indices across chunks, in input order


def test_no_model_is_said_and_nothing_recorded(tmp_path, db):
    summary = run_job(["a.png"], lambda: None, threading.Lock(), lambda: CaseLog.open(db), CancelToken(),
                      lambda _i: None, lambda _p: None)
    assert summary.error == "No model is loaded, so nothing can be graded" and summary.items == []
    assert summary_headline(summary).startswith("The batch could not run: No model is loaded")


def test_the_folder_dialog_checks_the_details_with_the_logs_rules(qtbot, tmp_path):
    from cataract_app.batch.dialog import GradeFolderDialog

    dialog = GradeFolderDialog(tmp_path)
    qtbot.addWidget(dialog)
    dialog.patient.setText(" P17 ")
    dialog.eye.setCurrentIndex(1)
    dialog.visit.setText("2026-13-45")
    dialog._accept()
    assert dialog.result() != GradeFolderDialog.DialogCode.Accepted
    assert "is not a date in the form YYYY-MM-DD" in dialog.error.text() and not dialog.error.isHidden()
    dialog.visit.setText("2026-03-01")
    dialog._accept()
    assert dialog.result() == GradeFolderDialog.DialogCode.Accepted
    assert dialog.details == {"patient_id": "P17", "eye": "OD", "visit_date": "2026-03-01"}
    dialog.folder.setText(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="is not a folder"):
        dialog.values()


def test_grade_a_folder_gives_every_case_the_details_and_they_win_over_a_dicoms(qtbot, window, tmp_path, db):
    from dicom_helpers import save, synth_photo, uncompressed

    folder = folder_of(tmp_path, 2)
    save(uncompressed(synth_photo(2, 64), PatientID="OTHER", ImageLaterality="L", StudyDate="20250101"),
         folder / "scan.dcm")
    given = {"patient_id": "P17", "eye": "OD", "visit_date": "2026-03-01"}
    window.batch.ask_folder = lambda: (str(folder), given)
    with qtbot.waitSignal(window.batch.finished, timeout=WAIT_MS) as blocker:
        window.actions_by_name["grade_folder"].trigger()
    summary = blocker.args[0]
    assert len(summary.recorded) == 3
    with CaseLog.open(db) as log:
        cases = [log.get(i.case.id) for i in summary.recorded]
    assert {(c.patient_id, c.eye, c.visit_date) for c in cases} == {("P17", "OD", "2026-03-01")}
    notes = [n for i in summary.items for n in i.notes]
    assert any("the file gives patient ID 'OTHER'; the given 'P17' is used" in n for n in notes)
    assert "OTHER" in window.batch.bar.details.text()  # the notes are in the summary
