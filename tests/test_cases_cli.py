"""`cataract-grade cases`: the command-line twin of the case log, on tiny models and a temporary database."""

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
from helpers import write_disc

from engine.cases import CaseLog
from engine.cli import main
from engine.data.manifest import validate_dataset


def _run(capsys, *argv):
    code = main(["cases", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def _recorded_once(tmp_path_factory, tiny_bundles):
    """Three graded images of one patient, graded once for the module; (db, folder, JSON lines of `add`)."""
    student, teacher = tiny_bundles
    root = tmp_path_factory.mktemp("cases-cli")
    folder = root / "images"
    folder.mkdir()
    for i, r in enumerate((12, 18, 24)):
        write_disc(folder / f"eye{i}.png", radius=r)
    db = root / "cases.sqlite3"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["cases", "add", "--dir", str(folder), "--patient", "P1", "--eye", "OS", "--date", "2026-04-01",
                     "--model", str(student), "--teacher", str(teacher), "--device", "cpu", "--db", str(db),
                     "--user", "dr-a", "--json"])
    assert code == 0
    return db, folder, [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture
def recorded(_recorded_once, tmp_path):
    """A private copy of the module's database and images (the database was closed, so it is one file)."""
    db, folder, lines = _recorded_once
    copy = tmp_path / "images"
    shutil.copytree(folder, copy)
    with CaseLog.open(db) as log:
        cases = log.list()
    mine = tmp_path / "cases.sqlite3"
    shutil.copyfile(db, mine)
    with CaseLog.open(mine) as log, log._guard(write=True) as conn:
        for c in cases:  # the copies' paths
            conn.execute("UPDATE cases SET image_path = ? WHERE id = ?", (str(copy / Path(c.image_path).name), c.id))
    lines = [{**line, "image": str(copy / Path(line["image"]).name)} for line in lines]
    return mine, copy, lines


def test_add_grades_and_records_every_image(recorded):
    db, folder, lines = recorded
    assert [Path(line["image"]).name for line in lines] == [f"eye{i}.png" for i in range(3)]
    with CaseLog.open(db) as log:
        cases = [log.get(line["id"]) for line in lines]
    for line, case in zip(lines, cases):
        assert (case.patient_id, case.eye, case.visit_date, case.status) == ("P1", "OS", "2026-04-01", "open")
        (answer,) = case.answers
        assert (answer.role, answer.model_name, answer.grade) == ("student", "tiny-student", line["grade"])
        assert case.audit[0].user == "dr-a"


def test_list_json_lines_carry_the_promised_keys_and_filters_apply(recorded, capsys):
    db, _folder, lines = recorded
    code, out, _err = _run(capsys, "list", "--json", "--db", str(db))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["id"] for r in rows] == [3, 2, 1]
    for row in rows:
        assert {"id", "image", "grade", "final_grade", "status"} <= set(row)
        assert (row["final_grade"], row["status"]) == (None, "open")
    _run(capsys, "agree", "2", "--db", str(db))
    _code, out, _err = _run(capsys, "list", "--json", "--status", "reviewed", "--db", str(db))
    assert [json.loads(line)["id"] for line in out.splitlines()] == [2]
    _code, out, _err = _run(capsys, "list", "--json", "--search", "eye0", "--db", str(db))
    assert [json.loads(line)["id"] for line in out.splitlines()] == [1]
    _code, out, err = _run(capsys, "list", "--patient", "nobody", "--db", str(db))
    assert out == "" and "0 of 0 matching cases (3 in" in err


def test_agree_correct_show_and_export_make_a_dataset_that_validates(recorded, tmp_path, capsys):
    db, _folder, lines = recorded
    assert _run(capsys, "agree", "1", "--db", str(db))[0] == 0
    grade = (lines[1]["grade"] + 3) % 8
    code, out, _err = _run(capsys, "correct", "2", str(grade), "--note", "=odd", "--json", "--db", str(db))
    assert code == 0 and (json.loads(out)["final_grade"], json.loads(out)["status"]) == (grade, "corrected")
    code, out, _err = _run(capsys, "show", "2", "--db", str(db))
    assert code == 0 and f"case 2: corrected, final grade {grade}" in out and "note      =odd" in out
    assert "WARNING" not in out and "correct" in out.split("history")[1]
    out_dir = tmp_path / "export"
    code, out, _err = _run(capsys, "export", str(out_dir), "--db", str(db))
    assert code == 0 and "2 reviewed cases written" in out
    report = validate_dataset(out_dir)
    assert report.ok and sorted(r.grade for r in report.records) == sorted([lines[0]["grade"], grade])
    assert main(["validate", str(out_dir)]) == 0


def test_show_warns_when_the_file_changed_since_grading(recorded, capsys):
    db, folder, _lines = recorded
    write_disc(folder / "eye0.png", radius=30)
    code, out, _err = _run(capsys, "show", "1", "--db", str(db))
    assert code == 0 and "WARNING   the image" in out and "has changed since it was graded" in out
    code, out, _err = _run(capsys, "show", "1", "--json", "--db", str(db))
    assert json.loads(out)["file_check"]["state"] == "changed"


def test_next_walks_the_open_cases_in_review_order(recorded, capsys):
    db, _folder, _lines = recorded
    with CaseLog.open(db) as log:
        expected = [c.id for c in sorted(log.list(), key=lambda c: (-c.priority, c.id))]
    _code, out, _err = _run(capsys, "next", "--limit", "5", "--json", "--db", str(db))
    assert [json.loads(line)["id"] for line in out.splitlines()] == expected
    for case_id in expected:
        _run(capsys, "agree", str(case_id), "--db", str(db))
    code, out, err = _run(capsys, "next", "--db", str(db))
    assert code == 0 and out == "" and "every case has been reviewed" in err


def test_add_with_sublabels_records_the_teacher_answer_and_the_entered_values(tmp_path, tiny_bundles, capsys):
    student, teacher = tiny_bundles
    img = write_disc(tmp_path / "a.png")
    db = tmp_path / "c.sqlite3"
    code, _out, err = _run(capsys, "add", str(img), "--sublabels", "central_involvement=1,morphology=0",
                           "--model", str(student), "--teacher", str(teacher), "--device", "cpu", "--db", str(db))
    assert code == 0, err
    with CaseLog.open(db) as log:
        case = log.get(1)
    assert [a.role for a in case.answers] == ["student", "teacher"]
    assert case.answers[1].sublabels_used["central_involvement"] == 1
    assert case.sublabels["central_involvement"] == 1 and case.sublabels["morphology"] == 0


@pytest.mark.parametrize("argv, message", [
    (["correct", "1", "9"], "whole number 0-7"),
    (["agree", "42"], "there is no case 42"),
    (["edit", "1", "--eye", "left"], "neither OD"),
    (["edit", "1"], "nothing to change"),
    (["list", "--status", "done"], "status 'done'"),
])
def test_refused_requests_exit_2_with_a_sentence(recorded, capsys, argv, message):
    db, _folder, _lines = recorded
    code, _out, err = _run(capsys, *argv, "--db", str(db))
    assert code == 2 and message in err


def test_an_unreadable_image_is_reported_and_the_rest_recorded(tmp_path, tiny_bundles, capsys):
    student, _teacher = tiny_bundles
    good = write_disc(tmp_path / "good.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    db = tmp_path / "c.sqlite3"
    code, out, err = _run(capsys, "add", str(bad), str(good), "--model", str(student), "--device", "cpu",
                          "--db", str(db), "--json")
    assert code == 0 and f"{bad}: error:" in err and "1 of 2 images recorded" in err
    assert [json.loads(line)["image"] for line in out.splitlines()] == [str(good.resolve())]


def test_a_newer_database_is_refused_by_the_cli(tmp_path, capsys):
    db = tmp_path / "c.sqlite3"
    with CaseLog.open(db) as log:
        log._conn.execute("PRAGMA user_version = 99")
    code, _out, err = _run(capsys, "list", "--db", str(db))
    assert code == 2 and "written by a newer Cataract Grader" in err


def test_export_since_active_starts_at_the_active_students_training_date(recorded, tmp_path, capsys):
    from engine.bundle import read_card
    from engine.cases import active_model_trained_at
    from engine.resources import default_model_dir

    db, _folder, _lines = recorded
    assert active_model_trained_at() == read_card(default_model_dir("student")).created  # nothing promoted in tests
    _run(capsys, "agree", "1", "--db", str(db))
    with CaseLog.open(db) as log, log._guard(write=True) as conn:  # a review from before that model was trained
        conn.execute("UPDATE cases SET reviewed_at = '2000-01-01T00:00:00.000000Z' WHERE id = 1")
    _run(capsys, "agree", "2", "--db", str(db))
    code, out, _err = _run(capsys, "export", str(tmp_path / "new"), "--since", "active", "--db", str(db))
    assert code == 0 and "1 reviewed cases written" in out
    assert [r.rel_path for r in validate_dataset(tmp_path / "new").records] == ["images/000002.png"]


def test_bad_details_are_refused_before_any_model_is_loaded(tmp_path, capsys):
    img = write_disc(tmp_path / "a.png")
    code, _out, err = _run(capsys, "add", str(img), "--eye", "left", "--model", str(tmp_path / "no-such-model"),
                           "--db", str(tmp_path / "c.sqlite3"))
    assert code == 2 and "neither OD" in err
