"""Reviewed cases added to an earlier dataset: one folder that validates, with patients and splits kept."""

import csv
import shutil

import pytest
from case_helpers import result, write_image

from engine.cases import CaseLog, CaseLogError
from engine.cli import main
from engine.data.manifest import load_dataset, validate_dataset
from engine.schema import DEFAULT_SCHEMA


@pytest.fixture
def log(tmp_path):
    with CaseLog.open(tmp_path / "cases.sqlite3", user="dr-a") as opened:
        yield opened


def _earlier(tmp_path, split=True, n=6):
    """A small dataset folder: images in a subfolder, patients E0-E2, splits by patient, one grade range."""
    root = tmp_path / "earlier"
    (root / "img").mkdir(parents=True)
    header = ["image", "grade", *DEFAULT_SCHEMA.names, "patient_id", "eye", "grade_min", "grade_max"]
    header += ["split"] if split else []
    rows = []
    for i in range(n):
        write_image(root / "img" / f"e{i}.png", seed=100 + i)
        subs = ["1" if name == "central_involvement" else "" for name in DEFAULT_SCHEMA.names]
        row = [f"img/e{i}.png", str(i % 8), *subs, f"E{i % 3}", "OD", "0" if i == 0 else "", "3" if i == 0 else ""]
        rows.append(row + ([["train", "val", "test"][i % 3]] if split else []))
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header, *rows])
    assert validate_dataset(root, check_images=True).ok
    return root


def _review(log, path, grade, patient=None, correct=None):
    case = log.record(result(path, grade=grade), patient_id=patient)
    return log.correct(case.id, correct) if correct is not None else log.agree(case.id)


def test_cases_added_to_a_dataset_keep_its_rows_patients_and_splits(log, tmp_path):
    earlier = _earlier(tmp_path)
    new_patient = _review(log, write_image(tmp_path / "n1.png", seed=1), 4, patient="P9")
    known_patient = _review(log, write_image(tmp_path / "n2.png", seed=2), 5, patient="E1", correct=6)
    res = log.export(tmp_path / "merged", add_to=earlier)
    assert (res.rows, res.base_rows, res.replaced, res.added_to) == (2, 6, (), earlier.resolve())
    report = validate_dataset(tmp_path / "merged", check_images=True)
    assert report.ok, [str(p) for p in report.problems]
    records = {r.rel_path: r for r in load_dataset(tmp_path / "merged")}
    assert len(records) == 8
    for i in range(6):  # the earlier rows, as they were, with their images under base/
        r = records[f"base/img/e{i}.png"]
        assert (r.grade, r.patient_id, r.split) == (i % 8, f"E{i % 3}", ["train", "val", "test"][i % 3])
        assert r.image.read_bytes() == (earlier / "img" / f"e{i}.png").read_bytes()
    assert (records["base/img/e0.png"].grade_min, records["base/img/e0.png"].grade_max) == (0, 3)
    a, b = records[f"images/{new_patient.id:06d}.png"], records[f"images/{known_patient.id:06d}.png"]
    assert (a.grade, a.patient_id, a.split) == (4, "P9", "train")  # a new patient trains
    assert (b.grade, b.patient_id, b.split) == (6, "E1", "val")  # a known patient stays in its split


def test_a_reviewed_photograph_already_in_the_dataset_replaces_its_row(log, tmp_path):
    earlier = _earlier(tmp_path)
    copy = tmp_path / "graded-copy.png"
    shutil.copyfile(earlier / "img" / "e2.png", copy)  # the same bytes, from elsewhere, with no patient given
    case = _review(log, copy, 2, correct=7)
    res = log.export(tmp_path / "merged", add_to=earlier)
    assert (res.rows, res.base_rows, res.replaced) == (1, 5, (case.id,))
    records = {r.rel_path: r for r in load_dataset(tmp_path / "merged")}
    assert "base/img/e2.png" not in records and not (tmp_path / "merged" / "base" / "img" / "e2.png").exists()
    mine = records[f"images/{case.id:06d}.png"]
    assert (mine.grade, mine.patient_id, mine.split) == (7, "E2", "test")  # the earlier row's patient and split


def test_without_splits_none_are_invented(log, tmp_path):
    earlier = _earlier(tmp_path, split=False)
    _review(log, write_image(tmp_path / "n1.png", seed=1), 3, patient="P1")
    log.export(tmp_path / "merged", add_to=earlier)
    records = load_dataset(tmp_path / "merged").records
    assert len(records) == 7 and all(r.split is None for r in records)


@pytest.mark.parametrize("link", ["hardlink", "symlink"])
def test_the_earlier_images_can_be_linked(log, tmp_path, link):
    earlier = _earlier(tmp_path)
    _review(log, write_image(tmp_path / "n1.png", seed=1), 3)
    res = log.export(tmp_path / "merged", add_to=earlier, link=link)
    placed = tmp_path / "merged" / "base" / "img" / "e1.png"
    assert res.link == link and validate_dataset(tmp_path / "merged", check_images=True).ok
    if link == "symlink":
        assert placed.is_symlink()
    else:
        assert placed.stat().st_ino == (earlier / "img" / "e1.png").stat().st_ino


def test_a_dataset_with_problems_or_another_schema_is_refused_and_nothing_written(log, tmp_path):
    earlier = _earlier(tmp_path)
    _review(log, write_image(tmp_path / "n1.png", seed=1), 3)
    (earlier / "img" / "e3.png").unlink()
    with pytest.raises(CaseLogError, match="has 1 problem .*e3.png.* fix it before adding cases"):
        log.export(tmp_path / "merged", add_to=earlier)
    assert not (tmp_path / "merged").exists()
    write_image(earlier / "img" / "e3.png", seed=103)
    with pytest.raises(CaseLogError, match="outside the dataset"):
        log.export(earlier / "merged", add_to=earlier)
    (earlier / "schema.json").write_text('{"sublabels": [{"name": "other", "kind": "ordinal", "minimum": 0, '
                                         '"maximum": 2}]}')
    with pytest.raises(CaseLogError, match="missing required column other"):  # its rows do not fit its schema
        log.export(tmp_path / "merged", add_to=earlier)
    assert not (tmp_path / "merged").exists()


def test_cli_export_add_to(log, tmp_path, capsys):
    earlier = _earlier(tmp_path)
    copy = tmp_path / "again.png"
    shutil.copyfile(earlier / "img" / "e0.png", copy)
    _review(log, copy, 0, correct=1)
    _review(log, write_image(tmp_path / "n1.png", seed=1), 3)
    log.close()
    code = main(["cases", "export", str(tmp_path / "merged"), "--add-to", str(earlier), "--db",
                 str(tmp_path / "cases.sqlite3")])
    out = capsys.readouterr().out
    assert code == 0
    assert "2 reviewed cases written" in out and f"with 5 rows of {earlier.resolve()}" in out
    assert "1 of its photographs were reviewed again" in out
    assert validate_dataset(tmp_path / "merged", check_images=True).ok


def test_an_optional_column_of_the_earlier_dataset_is_kept_and_blank_for_the_cases(log, tmp_path):
    earlier = _earlier(tmp_path, n=3)
    rows = list(csv.reader(open(earlier / "labels.csv", newline="", encoding="utf-8")))
    rows[0] += ["lens_cx", "lens_cy", "lens_r"]
    for row in rows[1:]:
        row += ["8", "8.5", "6"]
    with open(earlier / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    case = _review(log, write_image(tmp_path / "n1.png", seed=1), 3)
    log.export(tmp_path / "merged", add_to=earlier)
    records = {r.rel_path: r for r in load_dataset(tmp_path / "merged")}
    assert all(records[f"base/img/e{i}.png"].lens == (8.0, 8.5, 6.0) for i in range(3))
    assert records[f"images/{case.id:06d}.png"].lens is None
