"""predict's outputs: CSV rows as they come, heat maps as PNG and/or .npy named after the input's relative path,
the grade printed beside --csv, a missing file refused before the model loads."""

import csv

import cv2
import numpy as np
import pytest

from engine.cli import main
from engine.outputs import CsvStream, OutputError, finite, heat_map_files, json_line, output_names


def _disc(h=90, w=120, seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 3, (200, 80, 40), -1)
    return np.clip(img.astype(int) + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)


def test_csv_rows_are_on_disk_before_the_batch_ends(tmp_path):
    target = tmp_path / "out" / "grades.csv"
    stream = CsvStream(target, ["file", "grade"])
    stream.write({"file": "a.png", "grade": 3})
    stream.write({"file": "b.png", "grade": 5, "extra": "ignored"})
    partial = target.with_name("grades.csv.partial")
    assert list(csv.DictReader(partial.open())) == [{"file": "a.png", "grade": "3"}, {"file": "b.png", "grade": "5"}]
    assert not target.exists()  # the final name appears only complete
    stream.close()
    assert not partial.exists() and len(list(csv.DictReader(target.open()))) == 2


def test_csv_that_cannot_be_opened_is_one_sentence(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(OutputError, match="could not be written"):
        CsvStream(tmp_path / "taken" / "grades.csv", ["file"])


def test_output_names_mirror_the_relative_path_and_never_collide(tmp_path):
    root = tmp_path / "visit"
    files = [root / "a" / "x.png", root / "b" / "x.png", root / "x.png", root / "x.tif"]
    names = output_names([str(f) for f in files], root)
    assert list(names.values()) == ["a/x.png", "b/x.png", "x.png", "x.tif"]
    loose = [str(tmp_path / "p" / "x.png"), str(tmp_path / "q" / "x.png")]
    assert list(output_names(loose).values()) == ["p/x.png", "q/x.png"]
    assert list(output_names([loose[0]]).values()) == ["x.png"]
    mixed = output_names([str(root / "x.png"), loose[0]], root)  # a loose file named like one in the folder
    assert sorted(mixed.values()) == ["x.png", "x.png~2"]
    assert [p.name for p in heat_map_files("c", "a/x.png", "both")] == ["x.png_cam.png", "x.png_cam.npy"]


def test_json_line_has_no_nan():
    assert json_line({"a": float("nan"), "b": [1.0, float("inf")], "c": np.float32(0.5)}) == \
        '{"a": null, "b": [1.0, null], "c": 0.5}'
    assert finite((1.0, float("-inf"))) == [1.0, None]


def test_predict_writes_npy_maps_at_the_image_resolution(tiny_bundles, tmp_path, capsys):
    visit = tmp_path / "visit"
    (visit / "a").mkdir(parents=True)
    cv2.imwrite(str(visit / "a" / "x.png"), _disc(90, 120))
    cv2.imwrite(str(visit / "x.png"), _disc(70, 50, seed=1))
    cams = tmp_path / "cams"
    base = ["predict", "--dir", str(visit), "--model", str(tiny_bundles[0]), "--device", "cpu", "--cam-dir", str(cams)]
    assert main([*base, "--cam-format", "npy"]) == 0
    assert sorted(p.relative_to(cams).as_posix() for p in cams.rglob("*.*")) == ["a/x.png_cam.npy", "x.png_cam.npy"]
    for name, shape in (("a/x.png_cam.npy", (90, 120)), ("x.png_cam.npy", (70, 50))):
        heat = np.load(cams / name, allow_pickle=False)
        assert heat.shape == shape and heat.dtype == np.float32
        assert 0.0 <= heat.min() and heat.max() <= 1.0 and heat.max() > 0
    assert main([*base, "--cam-format", "both", "--cam-dir", str(tmp_path / "both")]) == 0
    assert sorted(p.name for p in (tmp_path / "both").glob("*.*")) == ["x.png_cam.npy", "x.png_cam.png"]
    png = cv2.imread(str(tmp_path / "both" / "x.png_cam.png"))
    assert png.shape[:2] == (70, 50)


def test_predict_with_csv_still_prints_each_grade(tiny_bundles, tmp_path, capsys):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), _disc())
    out_csv = tmp_path / "g.csv"
    assert main(["predict", str(img), "--model", str(tiny_bundles[0]), "--device", "cpu", "--csv", str(out_csv)]) == 0
    out = capsys.readouterr().out
    (row,) = list(csv.DictReader(out_csv.open()))
    assert f"a.png: grade {row['grade']} (confidence" in out


def test_predict_refuses_a_missing_file_before_loading_a_model(monkeypatch, tmp_path, capsys):
    import engine.infer

    def no_model(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(engine.infer, "Grader", no_model)
    assert main(["predict", str(tmp_path / "nope.jpg")]) == 2
    assert "nope.jpg does not exist; nothing was graded" in capsys.readouterr().err
    assert main(["predict", str(tmp_path)]) == 2
    assert "is not a file" in capsys.readouterr().err


def test_predict_json_gives_an_object_for_an_unsupported_file(tiny_bundles, tmp_path, capsys):
    import json

    cv2.imwrite(str(tmp_path / "a.png"), _disc())
    (tmp_path / "b.webp").write_bytes(b"RIFF0000WEBP")
    (tmp_path / ".DS_Store").write_bytes(b"\0")  # hidden files are not inputs
    assert main(["predict", "--dir", str(tmp_path), "--model", str(tiny_bundles[0]), "--device", "cpu", "--json"]) == 0
    objs = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [o["file"].rsplit("/", 1)[-1] for o in objs] == ["a.png", "b.webp"]
    assert objs[1]["grade"] is None and "extension '.webp'" in objs[1]["error"]
