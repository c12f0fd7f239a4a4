"""Dataset format: labels.csv parsing, every validation problem at its exact line, and `cataract-grade validate`."""

import json
import re

import cv2
import numpy as np
import pytest

from engine.cli import main
from engine.data.manifest import (
    DatasetError,
    Problem,
    dataset_fingerprint,
    load_dataset,
    validate_dataset,
)
from engine.schema import DEFAULT_SCHEMA, Schema, SubLabel

SUBS = DEFAULT_SCHEMA.names
COLUMNS = ["image", "grade", *SUBS, "patient_id", "eye", "split", "grade_min", "grade_max"]


def row(image="a.png", grade="1", subs=("1", "2", "3", "1", "1", "1"), patient="", eye="", split="", lo="", hi=""):
    return ",".join([image, grade, *subs, patient, eye, split, lo, hi])


def make(root, rows, header=",".join(COLUMNS), images=("a.png", "b.png", "c.png", "d.png")):
    """A dataset folder: tiny PNGs named `images` and labels.csv with `header` then `rows`."""
    root.mkdir(parents=True, exist_ok=True)
    for name in images:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / name), np.full((16, 16, 3), 90, np.uint8))
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return root


def problems(root, **kw):
    return [(p.line, p.message) for p in validate_dataset(root, **kw).problems]


def only(root, **kw):
    found = problems(root, **kw)
    assert len(found) == 1, found
    return found[0]


# ---- clean datasets --------------------------------------------------------------------------


def test_clean_dataset_loads_every_field(tmp_path):
    root = make(tmp_path / "d", [
        row("a.png", "0", ("0",) * 6, "P1", "OD", "train"),
        row("b.png", "3", ("1", "", "4", "", "2", "1"), "P1", "OS", "train", "2", "4"),
        row("c.png", "7", ("2", "5", "8", "3", "3", "3"), "P2", "", "test"),
    ])
    manifest = load_dataset(root)
    assert len(manifest) == 3 and manifest.schema == DEFAULT_SCHEMA
    b = manifest.records[1]
    assert b.image == (root / "b.png").resolve() and b.image.is_absolute()
    assert (b.rel_path, b.grade, b.line) == ("b.png", 3, 3)
    assert b.sublabels == (1, None, 4, None, 2, 1)
    assert (b.patient_id, b.eye, b.split, b.grade_min, b.grade_max) == ("P1", "OS", "train", 2, 4)
    assert manifest.records[2].eye is None and manifest.records[2].grade_min is None


def test_minimal_columns_and_subfolders(tmp_path):
    header = ",".join(["image", "grade", *SUBS])
    root = make(tmp_path / "d", ["imgs/x.png,5,,,,,,", "imgs\\y.png,2,1,,,,,"], header, images=("imgs/x.png", "imgs/y.png"))
    records = load_dataset(root).records
    assert [r.rel_path for r in records] == ["imgs/x.png", "imgs/y.png"]
    assert records[0].sublabels == (None,) * 6 and records[0].split is None and records[0].patient_id is None


def test_summary_counts(tmp_path):
    root = make(tmp_path / "d", [
        row("a.png", "0", split="train", patient="P1"),
        row("b.png", "0", split="train", patient="P1"),
        row("c.png", "5", ("", "", "", "", "", ""), split="val", patient="P2"),
        row("d.png", "7", split="test", patient="P3"),
    ])
    s = validate_dataset(root).summary
    assert s["images"] == 4 and s["patients"] == 3
    assert s["per_grade"] == {0: 2, 1: 0, 2: 0, 3: 0, 4: 0, 5: 1, 6: 0, 7: 1}
    assert s["per_split"] == {"train": 2, "val": 1, "test": 1, "unassigned": 0}
    assert s["sublabels_known"]["central_involvement"] == 3


def test_custom_schema_json_defines_the_columns(tmp_path):
    schema = Schema(sublabels=(SubLabel("haze", "ordinal", 1, 4, "Haze."),), name="clinic")
    root = make(tmp_path / "d", ["a.png,2,4", "b.png,3,"], header="image,grade,haze")
    schema.save(root / "schema.json")
    manifest = load_dataset(root)
    assert manifest.schema.names == ("haze",)
    assert [r.sublabels for r in manifest.records] == [(4,), (None,)]
    assert only(make(root, ["a.png,2,0"], header="image,grade,haze")) == (2, "haze: 0 is outside 1-4")


def test_blank_lines_keep_physical_line_numbers(tmp_path):
    root = make(tmp_path / "d", [row("a.png"), "", row("b.png", "9")])
    assert only(root) == (4, "grade 9 is outside 0-7")


def test_fingerprint_is_stable_and_follows_the_labels(tmp_path):
    root = make(tmp_path / "d", [row("a.png"), row("b.png")])
    first = dataset_fingerprint(load_dataset(root))
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert dataset_fingerprint(load_dataset(root)) == first
    make(root, [row("a.png"), row("b.png", "2")])
    assert dataset_fingerprint(load_dataset(root)) != first


# ---- problems, each at its line ---------------------------------------------------------------

ROW_CASES = [
    (row(grade="x"), "grade 'x' is not an integer"),
    (row(grade="8"), "grade 8 is outside 0-7"),
    (row(grade="-1"), "grade -1 is outside 0-7"),
    (row(grade=""), "grade is blank"),
    (row(subs=("3", "", "", "", "", "")), "central_involvement: 3 is outside 0-2"),
    (row(subs=("", "", "two", "", "", "")), "sectors_involved: 'two' is not an integer"),
    (row(lo="a"), "grade_min 'a' is not an integer"),
    (row(hi="9"), "grade_max 9 is outside 0-7"),
    (row(grade="3", lo="5", hi="2"), "grade_min 5 is greater than grade_max 2"),
    (row(grade="1", lo="2", hi="4"), "grade 1 is below grade_min 2"),
    (row(grade="6", hi="4"), "grade 6 is above grade_max 4"),
    (row(split="training"), "split 'training' is not one of train, val, test"),
    (row(image="nope.png"), "image file 'nope.png' does not exist"),
    (row(image=""), "image is blank"),
    (row(image="../a.png"), "image path '../a.png' must be relative to the dataset folder and stay inside it"),
    (row(image="/etc/a.png"), "image path '/etc/a.png' must be relative to the dataset folder and stay inside it"),
    (row(image="a.gif"), "image 'a.gif' has an unsupported extension"),
    (row() + ",extra", "the row has 14 cells but the header has 13"),
    ("a.png,1", "the row has 2 cells but the header has 13"),
]


@pytest.mark.parametrize("bad,message", ROW_CASES)
def test_row_problem_is_reported_at_its_line(tmp_path, bad, message):
    root = make(tmp_path / "d", [row("b.png"), row("c.png"), bad, row("d.png")])
    line, text = only(root, check_images=False)
    assert line == 4 and text.startswith(message)


def test_duplicate_image_is_reported_on_the_second_row(tmp_path):
    root = make(tmp_path / "d", [row("a.png"), row("b.png"), row("./a.png", "2")])
    assert only(root) == (4, "image 'a.png' is listed twice (first on line 2)")


def test_patient_in_two_splits(tmp_path):
    root = make(tmp_path / "d", [
        row("a.png", patient="P1", split="train"), row("b.png", patient="P2", split="val"),
        row("c.png", patient="P1", split="test"),
    ])
    assert only(root) == (4, "patient 'P1' is in split 'test' here but in 'train' on line 2")
    make(root, [row("a.png", patient="P1", split="train"), row("b.png", "9", patient="P1", split="val")])
    assert problems(root) == [(3, "grade 9 is outside 0-7"), (3, "patient 'P1' is in split 'val' here but in 'train' on line 2")]


def test_split_filled_on_some_rows_only(tmp_path):
    root = make(tmp_path / "d", [row("a.png", split="train"), row("b.png"), row("c.png")])
    line, message = only(root)
    assert line == 3 and message.startswith("split is blank here and on 1 other row(s)")


def test_unreadable_image_only_when_checking_images(tmp_path):
    root = make(tmp_path / "d", [row("a.png"), row("b.png")])
    data = (root / "b.png").read_bytes()
    (root / "b.png").write_bytes(data[: len(data) // 2])
    line, message = only(root, check_images=True)
    assert line == 3 and message.startswith("image 'b.png': the file is truncated")
    assert problems(root, check_images=False) == []
    seen = []
    validate_dataset(root, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]
    assert [r.rel_path for r in validate_dataset(root).records] == ["a.png"]


def test_image_that_is_a_folder(tmp_path):
    root = make(tmp_path / "d", [row("a.png"), row("sub.png")])
    (root / "sub.png").mkdir()
    assert only(root) == (3, "image 'sub.png' is a folder, not a file")


def test_header_problems_are_on_line_one(tmp_path):
    header = ",".join(["image", "grade", *SUBS[:-1], "colour"])
    root = make(tmp_path / "d", ["a.png,1,0,0,0,0,0,0"], header)
    found = problems(root)
    assert found[0] == (1, "missing required column morphology (leave a sub-label's cells blank where it is unknown)")
    assert found[1][0] == 1 and found[1][1].startswith("unknown column 'colour'; expected image, grade,")
    assert len(found) == 2


def test_missing_grade_column_stops_row_checks(tmp_path):
    root = make(tmp_path / "d", ["a.png,0,0,0,0,0,0", "zzz.png,0,0,0,0,0,0"], ",".join(["image", *SUBS]))
    assert only(root) == (1, "missing required column grade")


def test_duplicate_column(tmp_path):
    root = make(tmp_path / "d", [row("a.png") + ",1"], ",".join(COLUMNS) + ",grade")
    assert (1, "column 'grade' appears 2 times") in problems(root)


def test_semicolon_separated_file(tmp_path):
    root = make(tmp_path / "d", ["a.png;1"], ";".join(COLUMNS))
    assert only(root) == (1, "the columns are separated by ';'; save labels.csv with commas")


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "there is no labels.csv in"),
        (b"image,grade\n\xe9t\xe9.png,1\n", "labels.csv is not UTF-8 text (bad byte at offset 12)"),
        (b"PK\x03\x04\x00\x00binary", "labels.csv is not a text CSV file"),
        (b"", "labels.csv is empty"),
        (",".join(COLUMNS).encode() + b"\n", "labels.csv has a header but no rows"),
    ],
)
def test_file_level_problems_are_on_line_zero(tmp_path, content, message):
    root = make(tmp_path / "d", [], images=())
    if content is None:
        (root / "labels.csv").unlink()
    else:
        (root / "labels.csv").write_bytes(content)
    line, text = only(root)
    assert line == 0 and text.startswith(message)


def test_missing_folder(tmp_path):
    assert only(tmp_path / "absent")[0] == 0


def test_invalid_schema_json(tmp_path):
    root = make(tmp_path / "d", [row("a.png")])
    (root / "schema.json").write_text("{not json")
    report = validate_dataset(root)
    assert len(report.problems) == 1
    assert str(report.problems[0]).startswith("schema.json: schema.json is invalid:")


def test_utf8_bom_is_accepted(tmp_path):
    root = make(tmp_path / "d", [row("a.png")])
    (root / "labels.csv").write_bytes(b"\xef\xbb\xbf" + (root / "labels.csv").read_bytes())
    assert problems(root) == []


def test_every_problem_is_listed_and_load_raises_with_all_of_them(tmp_path):
    root = make(tmp_path / "d", [row("a.png", "9"), row("b.png"), row("zzz.png"), row("c.png", split="x"),
                                 row("d.png", subs=("", "", "", "", "", "7"))])
    expected = [2, 4, 5, 6]
    assert [line for line, _ in problems(root)] == expected
    with pytest.raises(DatasetError) as info:
        load_dataset(root)
    err = info.value
    assert [p.line for p in err.problems] == expected
    assert "has 4 problems" in str(err) and "labels.csv:2: grade 9 is outside 0-7" in str(err)
    assert "(and 1 more;" in str(err)


def test_problem_text_format():
    assert str(Problem(12, "grade 9 is outside 0-7")) == "labels.csv:12: grade 9 is outside 0-7"


# ---- CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def cli_main(monkeypatch):
    """engine.cli.main with only this command registered, so other commands' imports cannot interfere."""
    from engine import cli

    monkeypatch.setattr(cli, "COMMANDS", {"validate": cli.COMMANDS["validate"]})
    return main


def test_cli_clean_dataset_exits_zero(tmp_path, capsys, cli_main):
    root = make(tmp_path / "d", [row("a.png", "0", split="train", patient="P1"), row("b.png", "7", split="val")])
    assert cli_main(["validate", str(root)]) == 0
    out = capsys.readouterr().out
    assert "2 valid images, 1 patients" in out
    assert "0:1  1:0  2:0  3:0  4:0  5:0  6:0  7:1" in out and "train:1  val:1  test:0" in out
    assert out.strip().endswith("ok")


def test_cli_problems_exit_two_one_per_line(tmp_path, capsys, cli_main):
    root = make(tmp_path / "d", [row("a.png", "9"), row("missing.png")])
    assert cli_main(["validate", str(root)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["labels.csv:2: grade 9 is outside 0-7", "labels.csv:3: image file 'missing.png' does not exist"]
    assert lines[-1] == "2 problems"


def test_cli_json_and_no_images(tmp_path, capsys, cli_main):
    root = make(tmp_path / "d", [row("a.png"), row("b.png")])
    (root / "b.png").write_bytes(b"not an image")
    assert cli_main(["validate", str(root), "--json"]) == 2
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False and result["summary"]["images"] == 1
    assert result["problems"] == [{"file": "labels.csv", "line": 3,
                                   "message": "image 'b.png': it is not an image (its content is not JPEG, PNG, TIFF or BMP)"}]
    assert cli_main(["validate", str(root), "--json", "--no-images"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["per_grade"]["1"] == 2


# ---- lenient numbers and runaway quotes ------------------------------------------------------


@pytest.mark.parametrize("text", ["0_7", "٧", "3_0", "7.0", "", "1e1", "0x3", "²"])
def test_grades_are_ascii_digits_only(tmp_path, text):
    root = make(tmp_path / "d", [row("a.png", text)])
    expected = "grade is blank" if text == "" else f"grade '{text}' is not an integer (write it in the digits 0-9)"
    assert only(root) == (2, expected)


@pytest.mark.parametrize("text", ["0_2", "٢", "1_0"])
def test_sublabels_and_grade_bounds_are_ascii_digits_only(tmp_path, text):
    root = make(tmp_path / "d", [row("a.png", "1", (text, "2", "3", "1", "1", "1"), lo=text if text == "1_0" else "")])
    found = problems(root)
    assert (2, f"central_involvement: '{text}' is not an integer") in found
    if text == "1_0":
        assert (2, "grade_min '1_0' is not an integer (write it in the digits 0-9)") in found


def test_signs_and_surrounding_spaces_still_read(tmp_path):
    root = make(tmp_path / "d", [row("a.png", " 3 "), row("b.png", "-1")])
    assert problems(root) == [(3, "grade -1 is outside 0-7")]


def test_an_unterminated_quote_is_reported_where_it_opened(tmp_path):
    root = make(tmp_path / "d", [row("a.png", "1"), row('"b.png', "2"), row("c.png", "3"), row("d.png", "4")])
    assert problems(root) == [(3, "a quote opens a cell on this line and is never closed, so lines 3-5 were read "
                                  "as one cell; close the quote or remove it")]


def test_a_quote_closed_lines_later_is_reported_and_the_other_rows_still_checked(tmp_path):
    rows = [row("a.png", "1"), row("b.png", '"2'), row("c.png", "3"), row('d.png"', "4"), row("a.png", "9")]
    found = problems(make(tmp_path / "d", rows))
    assert found[0] == (3, "a quoted cell opens on this line and runs on to line 5; cells in labels.csv hold no "
                           "line breaks, so a quote is probably not closed")
    assert (6, "grade 9 is outside 0-7") in found  # the rows after the runaway cell are still checked


def test_quoted_cells_on_one_line_are_fine(tmp_path):
    root = make(tmp_path / "d", [row('"a.png"', '"1"'), row('"b ""x"".png"', "2")], images=("a.png", 'b "x".png'))
    assert problems(root) == []


def test_schema_json_bounds_must_be_whole_numbers(tmp_path):
    from engine.schema import SchemaError

    with pytest.raises(SchemaError, match=r"sub-label #1: maximum must be a whole number, not '0_7'"):
        Schema.from_dict({"sublabels": [{"name": "a", "maximum": "0_7"}]})
    with pytest.raises(SchemaError, match=r"sub-label #1: maximum must be a whole number, not 2.9"):
        Schema.from_dict({"sublabels": [{"name": "a", "maximum": 2.9}]})


def test_quote_lines_are_counted_alike_in_crlf_files():
    from engine.data.csvscan import quoted_line_breaks

    text = 'image,grade\r\n"a.png",1\r\nb.png,"2\r\nc.png,3\r\n"d.png,4\r\n'  # the quote on line 5 closes it
    assert quoted_line_breaks(text) == [(3, 5)]
    assert quoted_line_breaks('image,grade\r\na.png,1\r\n"b.png,2\r\nc.png,3\r\n') == [(3, None)]
    assert quoted_line_breaks("image,grade\na.png,1\n") == []


def test_lens_circle_columns_are_read_all_or_none(tmp_path):
    header = ",".join(["image", "grade", *SUBS, "lens_cx", "lens_cy", "lens_r"])
    subs = ",".join(("1", "2", "3", "1", "1", "1"))
    good = make(tmp_path / "good", [f"a.png,1,{subs},8,7.5,6.25", f"b.png,1,{subs},,,"], header=header)
    recs = load_dataset(good).records
    assert recs[0].lens == (8.0, 7.5, 6.25) and recs[1].lens is None
    bad = make(tmp_path / "bad", [f"a.png,1,{subs},8,,6", f"b.png,1,{subs},8,x,6", f"c.png,1,{subs},8,7,0"], header=header)
    found = problems(bad, check_images=False)
    assert [line for line, _ in found] == [2, 3, 4]
    assert "all of lens_cx" in found[0][1] and "not a number" in found[1][1] and "radius above 0" in found[2][1]


@pytest.mark.parametrize("text", ["1_0", "٧", "nan", "inf", "0x10"])
def test_lens_circle_cells_are_ascii_decimals_only(tmp_path, text):
    header = ",".join(["image", "grade", *SUBS, "lens_cx", "lens_cy", "lens_r"])
    subs = ",".join(("1", "2", "3", "1", "1", "1"))
    root = make(tmp_path / "d", [f"a.png,1,{subs},8,{text},6", f"b.png,1,{subs},8,.5e1,6.25"], header=header)
    assert problems(root, check_images=False) == [(2, f"lens circle 8, {text}, 6 holds a cell that is not a number")]
