"""Reviewed cases export as a dataset folder that the dataset reader accepts, atomically and spreadsheet-safe."""

import csv
import os

import pytest
from case_helpers import result, write_image

import engine.cases.export as export_mod
from engine.cases import CaseLog, CaseLogError
from engine.cases.export import neutralise
from engine.data.dataset import split_records
from engine.data.manifest import load_dataset, validate_dataset


@pytest.fixture
def log(tmp_path):
    with CaseLog.open(tmp_path / "cases.sqlite3", user="dr-a") as opened:
        yield opened


def _reviewed(log, tmp_path, n=6):
    """n cases over three patients (one with the ID -12); all reviewed but the last, which stays open."""
    ids = []
    for i in range(n):
        case = log.record(result(write_image(tmp_path / f"src{i}.png", seed=i), grade=i % 8),
                          patient_id=["-12", "P2", "+4420"][i % 3], eye="OD" if i % 2 else "OS",
                          sublabels={"central_involvement": 1, "morphology": None} if i == 0 else None)
        if i < n - 1:
            log.correct(case.id, (i + 3) % 8, note="=HYPERLINK(\"http://x\")") if i % 2 else log.agree(case.id)
        ids.append(case.id)
    return ids


def test_export_writes_a_dataset_that_validates_with_final_grades_and_patients(log, tmp_path):
    ids = _reviewed(log, tmp_path)
    out = tmp_path / "export"
    res = log.export(out)
    assert (res.folder, res.rows, res.skipped, res.link) == (out, 5, (), "copy")
    report = validate_dataset(out, check_images=True)
    assert report.ok, [str(p) for p in report.problems]
    manifest = load_dataset(out)
    by_image = {r.rel_path: r for r in manifest}
    for case_id in ids[:-1]:
        case = log.get(case_id)
        record = by_image[f"images/{case_id:06d}.png"]
        assert (record.grade, record.patient_id, record.eye) == (case.final_grade, case.patient_id, case.eye)
        assert record.image.read_bytes() == open(case.image_path, "rb").read()
    assert f"images/{ids[-1]:06d}.png" not in by_image  # the open case stays out
    assert {r.patient_id for r in manifest} == {"-12", "P2", "+4420"}  # numbers with a sign round-trip as typed
    first = by_image[f"images/{ids[0]:06d}.png"]
    assert first.sublabels[manifest.schema.names.index("central_involvement")] == 1
    assert not list(tmp_path.glob(".export.tmp-*"))


def test_splits_of_an_export_keep_each_patient_in_one_split(log, tmp_path):
    for i in range(24):
        case = log.record(result(write_image(tmp_path / f"s{i}.png", seed=i), grade=i % 8), patient_id=f"P{i % 6}")
        log.agree(case.id)
    log.export(tmp_path / "out")
    splits = split_records(load_dataset(tmp_path / "out").records, seed=0)
    homes = {}
    for name, records in splits.items():
        for r in records:
            homes.setdefault(r.patient_id, set()).add(name)
    assert len(homes) == 6 and all(len(s) == 1 for s in homes.values())


def test_cells_that_look_like_formulas_are_neutralised_in_the_provenance_file(log, tmp_path):
    _reviewed(log, tmp_path)
    log.export(tmp_path / "out")
    with open(tmp_path / "out" / "cases.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    notes = {r["note"] for r in rows}
    assert notes == {"", "'=HYPERLINK(\"http://x\")"}
    assert {r["patient_id"] for r in rows} == {"-12", "P2", "+4420"}
    assert all(r["image_sha256"] == log.get(int(r["case_id"])).image_sha256 for r in rows)


@pytest.mark.parametrize("cell, shown", [
    ("=1+2", "'=1+2"), ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("-12", "-12"), ("+3.5", "+3.5"), ("P-1", "P-1"), (None, ""), (4, "4"),
])
def test_neutralise(cell, shown):
    assert neutralise(cell) == shown


def test_a_formula_like_patient_id_already_in_the_database_is_refused_at_export(log, tmp_path):
    case = log.record(result(write_image(tmp_path / "a.png")))
    log.agree(case.id)
    with log._guard(write=True) as conn:  # as an older version, or another tool, might have stored it
        conn.execute("UPDATE cases SET patient_id = '=CMD()' WHERE id = ?", (case.id,))
    with pytest.raises(CaseLogError, match=f"case\\(s\\) {case.id} have a patient ID that begins like a spreadsheet"):
        log.export(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_only_cases_reviewed_since_a_time_are_exported(log, tmp_path):
    a = log.record(result(write_image(tmp_path / "a.png", seed=1)))
    b = log.record(result(write_image(tmp_path / "b.png", seed=2)))
    log.agree(a.id)
    log.correct(b.id, 7)
    res = log.export(tmp_path / "out", since=log.get(b.id).reviewed_at)
    assert res.rows == 1 and [r.grade for r in load_dataset(tmp_path / "out")] == [7]
    with pytest.raises(CaseLogError, match="no reviewed cases since 2999-01-01"):
        log.export(tmp_path / "later", since="2999-01-01")


def test_a_missing_or_changed_image_is_left_out_and_listed(log, tmp_path):
    ids = _reviewed(log, tmp_path, n=4)
    os.unlink(log.get(ids[0]).image_path)
    write_image(tmp_path / "src1.png", seed=99)
    res = log.export(tmp_path / "out")
    assert res.rows == 1 and [i for i, _why in res.skipped] == [ids[0], ids[1]]
    assert "missing" in res.skipped[0][1] and "changed since it was graded" in res.skipped[1][1]
    assert validate_dataset(tmp_path / "out").ok


@pytest.mark.parametrize("link", ["hardlink", "symlink"])
def test_images_can_be_linked_instead_of_copied(log, tmp_path, link):
    ids = _reviewed(log, tmp_path, n=3)
    res = log.export(tmp_path / "out", link=link)
    placed = tmp_path / "out" / "images" / f"{ids[0]:06d}.png"
    source = log.get(ids[0]).image_path
    assert res.link == link and validate_dataset(tmp_path / "out", check_images=True).ok
    if link == "symlink":
        assert placed.is_symlink() and os.readlink(placed) == source
    else:
        assert os.stat(placed).st_ino == os.stat(source).st_ino


def test_an_existing_folder_is_never_overwritten(log, tmp_path):
    _reviewed(log, tmp_path, n=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(CaseLogError, match="already exists"):
        log.export(out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert log.export(empty).rows == 1


def test_an_export_that_fails_halfway_leaves_nothing_behind(log, tmp_path, monkeypatch):
    _reviewed(log, tmp_path)
    real, calls = export_mod._place, []

    def failing(case, dest, link):
        calls.append(case.id)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(case, dest, link)

    monkeypatch.setattr(export_mod, "_place", failing)
    with pytest.raises(OSError, match="No space left"):
        log.export(tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_nothing_to_export_says_so(log, tmp_path):
    log.record(result(write_image(tmp_path / "a.png")))
    with pytest.raises(CaseLogError, match="there are no reviewed cases to export"):
        log.export(tmp_path / "out")
    with pytest.raises(CaseLogError, match="link mode 'move'"):
        log.export(tmp_path / "out", link="move")
