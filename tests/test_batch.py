"""grade_batch: the one batch path of `predict --dir`, `cases add` and the app's batch grading."""

import csv
import io

import pytest
from dicom_helpers import jpeg_baseline, save, synth_photo, uncompressed
from helpers import write_disc

from engine.batch import BatchProgress, csv_text, grade_batch
from engine.cases import CaseLog
from engine.cli import main
from engine.io import SUPPORTED_EXTENSIONS
from engine.progress import CancelToken
from engine.results import GATE_CSV_COLUMNS


@pytest.fixture(scope="module")
def grader(tiny_bundles):
    from engine.infer import Grader

    return Grader(*tiny_bundles, device="cpu")


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "clinic"
    (d / "sub").mkdir(parents=True)
    for i, r in enumerate((10, 16, 22)):
        write_disc(d / f"eye{i}.png", radius=r)
    save(uncompressed(synth_photo(1, 64), PatientID="P9", ImageLaterality="R", StudyDate="20260105"), d / "sub/a.dcm")
    save(jpeg_baseline(synth_photo(2, 64), PatientID="P9", ImageLaterality="L"), d / "sub/b.dcm")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return d


def _files(folder) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in SUPPORTED_EXTENSIONS)


def _parse(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_predict_dir_csv_rows_equal_the_engine_batch_rows(grader, tiny_bundles, folder, tmp_path, capsys):
    out = tmp_path / "predict.csv"
    assert main(["predict", "--dir", str(folder), "--csv", str(out), "--model", str(tiny_bundles[0]),
                 "--teacher", str(tiny_bundles[1]), "--device", "cpu"]) == 0
    items = list(grade_batch(grader, _files(folder)))
    from_cli, from_engine = _parse(out.read_text()), _parse(csv_text([i.row for i in items], grader.schema.names))
    assert from_cli == from_engine
    assert len(from_cli) == 6 and [r["file"] for r in from_cli] == _files(folder)
    assert [bool(r["error"]) for r in from_cli] == [True, False, False, False, False, False]  # broken.png first
    assert all(r["grade"] in "01234567" and r["model_id"] for r in from_cli[1:])
    assert list(from_cli[0]) == ["file", "grade", "confidence", *[f"p{k}" for k in range(8)],
                                 *[f"pred_{n}" for n in grader.schema.names], "model_id", *GATE_CSV_COLUMNS, "error"]


def test_each_result_is_recorded_as_it_arrives_with_dicom_details(grader, folder, tmp_path):
    with CaseLog.open(tmp_path / "cases.sqlite3", user="dr-a") as log:
        seen = []
        for item in grade_batch(grader, _files(folder), log=log, details={"visit_date": "2026-02-02"}):
            seen.append(item)
            assert log.count() == sum(i.case is not None for i in seen)  # recorded before it is yielded
        by_name = {i.path.rsplit("/", 1)[-1]: i for i in seen}
        a, b = by_name["a.dcm"].case, by_name["b.dcm"].case
        assert (a.patient_id, a.eye, a.visit_date) == ("P9", "OD", "2026-02-02")  # the given date wins
        assert by_name["a.dcm"].notes == ("the file gives visit date '2026-01-05'; the given '2026-02-02' is used",)
        assert (b.patient_id, b.eye, b.visit_date) == ("P9", "OS", "2026-02-02")
        assert by_name["eye0.png"].case.patient_id is None
        assert by_name["broken.png"].case is None and "broken.png" in by_name["broken.png"].error
        assert log.count() == 5


def test_a_refused_record_is_an_error_row_and_the_batch_goes_on(grader, folder, tmp_path):
    with CaseLog.open(tmp_path / "cases.sqlite3") as log:
        files = _files(folder)
        list(grade_batch(grader, files, log=log, details={"patient_id": "P1"}))
        again = list(grade_batch(grader, files, log=log, details={"patient_id": "P2"}))
    assert all(i.error.startswith("not recorded: ") and "patient id 'P1', not 'P2'" in i.error
               for i in again if i.result is not None)
    assert all(i.row["error"] == i.error and i.row["grade"] == i.result.grade for i in again if i.result is not None)


def test_cancel_stops_between_files_and_the_last_event_says_so(grader, folder):
    token, events, items = CancelToken(), [], []
    for item in grade_batch(grader, _files(folder), cancel=token, progress=events.append, batch_size=1):
        items.append(item)
        if len(items) == 2:
            token.cancel()
    assert len(items) == 2
    assert events[-1] == BatchProgress(2, 6, 1, events[-1].elapsed_s, cancelled=True, finished=True)
    assert [e.done for e in events] == [0, 1, 2, 2]


def test_progress_counts_give_an_eta(grader, folder):
    events = []
    items = list(grade_batch(grader, _files(folder), progress=events.append))
    assert len(items) == 6 and events[0].eta_s is None and (events[0].done, events[0].total) == (0, 6)
    last = events[-1]
    assert last.finished and not last.cancelled and (last.done, last.failed) == (6, 1) and last.eta_s == 0
    mid = events[3]
    assert mid.eta_s == pytest.approx(mid.elapsed_s / 3 * 3)
    assert BatchProgress(4, 10, 0, 8.0).eta_s == pytest.approx(12.0)


def test_cases_add_takes_details_from_a_dicom_and_the_command_line_wins(tiny_bundles, folder, tmp_path, capsys):
    db = tmp_path / "cases.sqlite3"
    dcm = folder / "sub" / "a.dcm"
    assert main(["cases", "add", str(dcm), str(folder / "sub" / "b.dcm"), "--eye", "OS", "--db", str(db),
                 "--model", str(tiny_bundles[0]), "--teacher", str(tiny_bundles[1]), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert f"note: {dcm}: the file gives eye 'OD'; the given 'OS' is used" in err
    with CaseLog.open(db) as log:
        a, b = sorted(log.list(), key=lambda c: c.id)
    assert (a.patient_id, a.eye, a.visit_date) == ("P9", "OS", "2026-01-05")
    assert (b.patient_id, b.eye, b.visit_date) == ("P9", "OS", None)
