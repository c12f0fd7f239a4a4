"""The model store: run folders, promote / switch back / history, refusals, damaged state, the `models` CLI."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

import engine.fsutil
from engine.cli import main as cli_main
from engine.model_store import STORE_ENV, ModelStore, StoreError, default_store_root


@pytest.fixture
def store(tmp_path, tiny_bundles):
    student, teacher = tiny_bundles
    return ModelStore(tmp_path / "store", defaults={"student": student, "teacher": teacher})


def add_run(store: ModelStore, source: Path, name: str, job: str = "kd", edit=None) -> Path:
    """A finished run in the store: a copy of `source` with another name (and card edits)."""
    bundle = store.new_run_dir(job) / "bundle"
    shutil.copytree(source, bundle)
    card = json.loads((bundle / "card.json").read_text())
    card["name"] = name
    if edit:
        edit(card)
    (bundle / "card.json").write_text(json.dumps(card))
    return bundle


def rename_sublabel(card: dict) -> None:
    card["schema"]["sublabels"][0]["name"] = "lens_clarity"


def test_a_fresh_store_uses_the_defaults_and_creates_nothing(store, tiny_bundles):
    assert store.active("student") == tiny_bundles[0] and store.active("teacher") == tiny_bundles[1]
    assert store.promoted("student") is None and store.problems() == [] and store.history() == []
    assert not store.root.exists()
    assert [c.name for _p, c in store.list_bundles()] == ["tiny-student", "tiny-teacher"]


def test_run_folders_are_unique_and_only_finished_runs_are_listed(store, tiny_bundles):
    a, b = store.new_run_dir("teacher"), store.new_run_dir("teacher")
    assert a != b and a.parent == b.parent == store.runs_dir and a.name.endswith("-teacher")
    bundle = add_run(store, tiny_bundles[0], "newest")
    (store.new_run_dir("kd") / "bundle").mkdir()  # an unfinished job: no card yet
    names = [c.name for _p, c in store.list_bundles()]
    assert names == ["newest", "tiny-student", "tiny-teacher"]
    assert store.list_bundles()[0][0] == bundle


def test_promote_switch_back_and_history(store, tiny_bundles):
    first = add_run(store, tiny_bundles[0], "first")
    second = add_run(store, tiny_bundles[0], "second")
    assert store.promote(first).name == "first"
    assert store.active("student") == first and store.active("teacher") == tiny_bundles[1]
    state = json.loads(store.active_file.read_text())
    assert state["student"] == first.relative_to(store.root).as_posix() and state["teacher"] is None
    store.promote(second, role="student")
    history = store.history()
    assert [(h["action"], h["bundle"], h["previous"]) for h in history] == [
        ("promote", state["student"], None),
        ("promote", second.relative_to(store.root).as_posix(), state["student"]),
    ]
    assert store.revert("student") == first  # back to the one before
    assert store.revert("student") == second  # and forth again
    assert first.is_dir() and second.is_dir()  # nothing is ever deleted
    store.promote(tiny_bundles[0])  # the shipped default again
    assert store.promoted("student") is None and store.active("student") == tiny_bundles[0]
    with pytest.raises(StoreError, match="never been changed"):
        store.revert("teacher")


def test_mismatched_or_damaged_bundles_are_refused_and_nothing_changes(store, tiny_bundles, tmp_path):
    with pytest.raises(StoreError, match="holds a teacher model, so it cannot become the active student"):
        store.promote(tiny_bundles[1], role="student")
    damaged = add_run(store, tiny_bundles[0], "damaged")
    data = bytearray((damaged / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (damaged / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(StoreError, match="changed or damaged"):
        store.promote(damaged)
    other_schema = add_run(store, tiny_bundles[0], "other-schema", edit=rename_sublabel)
    with pytest.raises(StoreError, match="another sub-label schema than the active teacher"):
        store.promote(other_schema)
    with pytest.raises(StoreError, match="no such model bundle"):
        store.promote(tmp_path / "nowhere")
    assert not store.active_file.exists() and store.active("student") == tiny_bundles[0]
    partner = add_run(store, tiny_bundles[1], "other-teacher", job="teacher", edit=rename_sublabel)
    store.promote(other_schema, partner=partner)  # a new schema goes in as a pair
    assert store.active("student") == other_schema and store.active("teacher") == partner


def test_a_bundle_from_outside_is_copied_in(store, tiny_bundles, tmp_path):
    outside = tmp_path / "elsewhere" / "bundle"
    shutil.copytree(tiny_bundles[0], outside)
    store.promote(outside)
    active = store.active("student")
    assert active != outside and active.parent.parent == store.runs_dir and "import-student" in active.parent.name
    shutil.rmtree(outside)
    assert store.promoted("student") == active


def test_a_damaged_active_file_means_defaults_and_is_set_aside(store, tiny_bundles):
    store.root.mkdir(parents=True)
    store.active_file.write_text('{"student": 3}')
    assert store.active("student") == tiny_bundles[0]
    [problem] = store.problems()
    assert "damaged" in problem and "'student' entry" in problem
    store.active_file.write_text("{ not json")
    assert "not valid JSON" in store.problems()[0]
    run = add_run(store, tiny_bundles[0], "after-damage")
    store.promote(run)
    assert store.problems() == [] and store.active("student") == run
    assert [p.read_text() for p in store.root.glob("active.json.damaged-*")] == ["{ not json"]


def test_a_promoted_bundle_that_disappeared_falls_back_to_the_default(store, tiny_bundles):
    run = add_run(store, tiny_bundles[0], "gone")
    store.promote(run)
    shutil.rmtree(run)
    assert store.active("student") == tiny_bundles[0]
    assert "promoted student cannot be used" in store.problems()[0]


def test_writes_are_atomic(store, tiny_bundles, monkeypatch):
    first = add_run(store, tiny_bundles[0], "first")
    store.promote(first)
    before = store.active_file.read_text()

    def fail(*_a):
        raise OSError("disk full")

    monkeypatch.setattr(engine.fsutil.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        store.promote(add_run(store, tiny_bundles[0], "second"))
    assert store.active_file.read_text() == before
    assert sorted(p.name for p in store.root.iterdir()) == ["active.json", "runs"]  # no temp file left


def test_default_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "home"))
    assert default_store_root() == tmp_path / "home"
    monkeypatch.delenv(STORE_ENV)
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
        assert default_store_root() == tmp_path / "xdg" / "CataractGrader" / "cataract-grader"


def test_models_cli_lists_promotes_and_refuses(store, tiny_bundles, monkeypatch, capsys):
    run = add_run(store, tiny_bundles[0], "cli-student")
    monkeypatch.setattr("engine.model_store.default_model_dir", lambda role: store.defaults[role])
    monkeypatch.setenv(STORE_ENV, str(store.root))
    assert cli_main(["models", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [(b["name"], b["active"]) for b in listing["bundles"]] == [
        ("cli-student", False), ("tiny-student", True), ("tiny-teacher", True)]
    assert cli_main(["models", "promote", str(run)]) == 0
    assert "active student: cli-student" in capsys.readouterr().out
    assert cli_main(["models", "active", "--json", "--store", str(store.root)]) == 0
    assert json.loads(capsys.readouterr().out)["student"]["name"] == "cli-student"
    assert cli_main(["models", "promote", str(tiny_bundles[1]), "--role", "student"]) == 2
    assert "cannot become the active student" in capsys.readouterr().err
    assert cli_main(["models", "revert", "teacher"]) == 2
    assert cli_main(["models", "revert", "student"]) == 0
    assert "shipped default" in capsys.readouterr().out
    store.active_file.write_text("[]")
    assert cli_main(["models", "active"]) == 0
    assert "warning:" in capsys.readouterr().err and os.path.exists(store.active_file)


def test_evaluate_on_split_scores_two_bundles_on_the_same_images(tiny_bundles, tiny_dataset):
    from engine.bundle import read_card
    from engine.data.dataset import split_records
    from engine.data.manifest import load_dataset
    from engine.evaluation import evaluate_bundle, evaluate_on_split

    student, teacher = tiny_bundles
    split = {"seed": 3, "val_frac": 0.25, "test_frac": 0.15}
    expected = len(split_records(load_dataset(tiny_dataset).records, **split)["val"])
    a = evaluate_on_split(student, tiny_dataset, split, device="cpu")
    b = evaluate_on_split(teacher, tiny_dataset, split, device="cpu")
    assert a["n"] == b["n"] == expected > 0 and a["split_config"] == split
    assert sum(map(sum, a["confusion"])) == expected and a["role"] == "student" and b["role"] == "teacher"
    by_card = evaluate_on_split(student, tiny_dataset, read_card(student), device="cpu")
    own = evaluate_bundle(student, tiny_dataset, "val", "cpu")
    assert (by_card["n"], by_card["acc"], by_card["qwk"]) == (own["n"], own["acc"], own["qwk"])
    with pytest.raises(ValueError, match="unknown split"):
        evaluate_on_split(student, tiny_dataset, split, split="holdout")
