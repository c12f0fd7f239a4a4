"""What a newcomer meets on the command line: train's progress and summary, no folder left by a failed job,
models list showing trained runs, and errors that say what was meant."""

import json
import shutil

import pytest

from engine.cli import main
from engine.progress import BatchEvent, DoneEvent, EpochEvent, ErrorEvent, StartEvent


def test_train_text_mode_shows_a_bar_and_a_short_summary(capsys):
    from engine.commands.train import _TextProgress

    show = _TextProgress("data/demo", mininterval=0)
    show(StartEvent(job="student", n_train=10, n_val=2, n_test=2, arch="resnet18", image_size=64, device="cpu"))
    for step in (1, 3, 5):
        show(BatchEvent(epoch=1, step=step, steps=5, loss=1.5))
    show(EpochEvent(epoch=1, epochs=2, train_loss=1.2, val_acc=0.5, val_qwk=0.7, best_epoch=1, seconds=3.0))
    metrics = {"val": {"acc": 0.5, "qwk": 0.7, "within1": 0.9, "n": 2}, "test": {"acc": 0.25, "qwk": 0.6, "n": 2}}
    show(DoneEvent(bundle="runs/s/bundle", best_epoch=1, metrics=metrics))
    show(ErrorEvent(message="it went wrong"))
    out, err = capsys.readouterr()
    assert "epoch 1: " in err and "5/5" in err and "loss=1.5000" in err  # tqdm's bar, on stderr
    assert "epoch 1/2  loss 1.2000  val acc 0.500  qwk 0.700" in out and "(best so far)" in out
    assert "val  accuracy 50.0 %  QWK 0.700  within one grade 90.0 %  (n=2)" in out
    assert "cataract-grade evaluate runs/s/bundle data/demo --split test" in out
    assert "cataract-grade models promote runs/s/bundle" in out
    assert "{" not in out  # no JSON dump of the metrics
    assert "error: it went wrong" in err


def test_a_train_that_fails_leaves_no_folder_it_made(tmp_path, capsys):
    out = tmp_path / "runs" / "s"
    assert main(["train", "student", str(tmp_path / "no-data"), "--out", str(out), "--device", "cpu"]) == 2
    assert "the dataset folder" in capsys.readouterr().err and not out.exists()
    assert main(["train", "student", str(tmp_path / "no-data"), "--out", str(out), "--device", "cpu"]) == 2
    assert not out.exists()  # and the same folder can be tried again
    kept = tmp_path / "mine"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    assert main(["train", "student", str(tmp_path / "no-data"), "--out", str(kept), "--device", "cpu"]) == 2
    assert (kept / "notes.txt").read_text() == "mine"  # a folder it did not make is left alone


def test_train_json_error_event_for_a_missing_dataset(tmp_path, capsys):
    code = main(["train", "student", str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--progress", "json"])
    event = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 2 and event["event"] == "error" and "does not exist" in event["message"]


def test_models_list_shows_runs_and_how_to_promote(tiny_bundles, tmp_path, capsys, monkeypatch):
    run = tmp_path / "runs" / "s"
    shutil.copytree(tiny_bundles[0], run / "bundle")
    card = json.loads((run / "bundle" / "card.json").read_text())
    card["name"] = "student-efficientnet_lite0-224px-lens-crop"  # 42 characters
    (run / "bundle" / "card.json").write_text(json.dumps(card))
    monkeypatch.chdir(tmp_path)
    assert main(["models", "list", "--store", str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert "trained, not in the store (runs)" in out
    assert "student-efficientnet_lite0-224px-lens-crop " in out and "runs/s/bundle" in out
    assert "cataract-grade models promote PATH/TO/bundle" in out
    assert main(["models", "list", "--store", str(tmp_path / "store"), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in listed["trained"]] == ["runs/s/bundle"]


def test_validate_on_a_missing_folder_says_so(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nothing")]) == 2
    out = capsys.readouterr().out
    assert out.strip() == f"the dataset folder {tmp_path / 'nothing'} does not exist (a dataset is a folder holding " \
                          "labels.csv)"


def test_unknown_sublabel_lists_the_valid_names():
    from engine.schema import DEFAULT_SCHEMA, SchemaError

    with pytest.raises(SchemaError, match=r"unknown sub-label 'colour' \(the sub-labels are central_involvement, "):
        DEFAULT_SCHEMA.validate({"colour": 1})


def test_a_run_folder_given_as_a_bundle_points_at_its_bundle(tiny_bundles, tiny_dataset, tmp_path, capsys):
    shutil.copytree(tiny_bundles[0], tmp_path / "s" / "bundle")
    assert main(["evaluate", str(tmp_path / "s"), str(tiny_dataset)]) == 2
    err = capsys.readouterr().err
    assert f"is a training run folder, not a model bundle; its model is {tmp_path / 's' / 'bundle'}" in err
