"""The input gate on the command line: predict's --lens, --no-input-check, JSON and CSV fields; cases add."""

import csv
import json
from pathlib import Path

import cv2
from gate_helpers import GATE_KEYS, noise, photo

from engine.cli import main


def test_predict_json_and_csv_carry_the_gate(lens_bundle, tmp_path, capsys):
    good, truth = photo()
    cv2.imwrite(str(tmp_path / "good.png"), good[..., ::-1])
    cv2.imwrite(str(tmp_path / "noise.png"), noise()[..., ::-1])
    base = ["predict", "--model", str(lens_bundle), "--device", "cpu"]
    assert main([*base, "--dir", str(tmp_path), "--json"]) == 0
    rows = {_name(o["file"]): o for o in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["good.png"]["input_ok"] is True and rows["good.png"]["input_problems"] == []
    assert rows["noise.png"]["input_ok"] is False and any("red-reflex" in s for s in rows["noise.png"]["input_problems"])
    out_csv = tmp_path / "out.csv"
    assert main([*base, "--dir", str(tmp_path), "--csv", str(out_csv)]) == 0
    table = {_name(r["file"]): r for r in csv.DictReader(out_csv.open())}
    assert table["noise.png"]["input_ok"] == "false" and "red-reflex" in table["noise.png"]["input_problems"]
    assert table["good.png"]["lens_source"] == "found" and float(table["good.png"]["ood_score"]) > 0
    capsys.readouterr()
    lens = f"{truth.cx},{truth.cy},{truth.r}"
    assert main([*base, str(tmp_path / "good.png"), "--lens", lens, "--json"]) == 0
    given = json.loads(capsys.readouterr().out)
    assert given["lens_source"] == "given" and given["lens_r"] == round(truth.r, 1)
    assert main([*base, str(tmp_path / "noise.png"), "--no-input-check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_ok"] is None


def test_predict_refuses_a_bad_lens_before_loading_a_model(tmp_path, capsys):
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), noise())
    for args, said in (([str(img), "--lens", "1,2"], "three numbers"),
                       ([str(img), "--lens", "1,2,-3"], "radius above 0"),
                       ([str(img), str(img), "--lens", "1,2,3"], "one photograph")):
        assert main(["predict", "--model", str(tmp_path / "none"), *args]) == 2
        assert said in capsys.readouterr().err


def test_cases_add_records_the_gate_for_the_review_order(lens_bundle, tmp_path, capsys):
    from engine.cases import CaseLog

    cv2.imwrite(str(tmp_path / "noise.png"), noise()[..., ::-1])
    db = tmp_path / "cases.sqlite3"
    assert main(["cases", "add", str(tmp_path / "noise.png"), "--model", str(lens_bundle), "--device", "cpu",
                 "--db", str(db), "--json"]) == 0
    assert "recorded with input problems" in capsys.readouterr().err
    with CaseLog.open(db) as log:
        case = log.get(1)
    assert set(case.gate) == GATE_KEYS and case.gate["ok"] is False
    assert case.gate["ood_score"] > case.gate["ood_threshold"] and case.ood > 0.5  # the review order reads them


def _name(path: str) -> str:
    return Path(path).name
