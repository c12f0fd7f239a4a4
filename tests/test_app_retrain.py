"""Retraining from the window: child-process jobs, progress, Stop, failures, compare, promote, Models dialog."""

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
from helpers import write_disc
from PySide6.QtCore import QSettings

from cataract_app.grading.loading import LoadOptions
from cataract_app.main_window import MainWindow
from cataract_app.retrain.curves import LineChart, nice_ticks
from cataract_app.retrain.launch import SEQUENCE, TEACHER, train_command
from cataract_app.retrain.progress import ProgressClock, describe
from engine.model_store import ModelStore
from engine.progress import parse_event
from engine.train_config import TrainConfig

JOB_MS = 240_000  # a 1-epoch job is 10-20 s on two cores, more when they are busy
WAIT_MS = 60_000
TINY = TrainConfig(epochs=1, image_size=64, batch_size=16, device="cpu")
LONG = TrainConfig(epochs=200, image_size=64, batch_size=16, device="cpu")


@pytest.fixture
def store(tmp_path, tiny_bundles):
    student, teacher = tiny_bundles
    return ModelStore(tmp_path / "store", defaults={"student": student, "teacher": teacher})


@pytest.fixture
def window(qtbot, store, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(LoadOptions(device="cpu"), settings, store=store)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.summary is not None or w.model_error is not None, timeout=WAIT_MS)
    assert w.model_error is None
    return w


def panel_with_dataset(qtbot, window, dataset, job, settings):
    window.actions_by_name["retrain"].trigger()  # Training > Retrain...
    panel = window.training.retrain_dialog
    assert panel.isVisible()
    panel.set_dataset(dataset)
    qtbot.waitUntil(lambda: panel.report is not None, timeout=WAIT_MS)
    panel.job_box.set_job(job)
    panel.settings_box.set_settings(settings)
    return panel



def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


# ---- plain logic ----------------------------------------------------------------------------------------


def test_train_command_runs_the_engine_in_development_and_the_app_itself_when_frozen(monkeypatch):
    program, args = train_command("kd", "/data", "/runs/x", TINY, teacher="/t/bundle")
    assert program == sys.executable and args[:4] == ["-m", "engine", "train", "kd"]
    assert args[args.index("--teacher") + 1] == "/t/bundle" and args[args.index("--progress") + 1] == "json"
    assert args[args.index("--image-size") + 1] == "64" and "--kd-alpha" in args and "--token-layout" not in args
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    program, args = train_command("teacher", "/data", "/runs/y", TrainConfig())
    assert program == sys.executable and args[:2] == ["train", "teacher"]
    assert args[args.index("--epochs") + 1] == "20" and args[args.index("--arch") + 1] == "tf_efficientnet_lite0"
    assert args[args.index("--pretrained") + 1] == "auto"
    assert "--kd-alpha" not in args and args[args.index("--token-layout") + 1] == "grid"


def test_method_options_reach_the_engines_train_command():
    from engine.cli import build_parser

    methods = TrainConfig(fusion="coattn", token_kd=0.5, attn_kd=1.5, extra_teachers=["/t2/bundle", "/t/bundle"],
                          arch="vit_tiny_patch16_224")
    _, kd_args = train_command("kd", "/data", "/runs/x", methods, teacher="/t/bundle")
    kd = build_parser().parse_args(kd_args[2:])  # what the child process will parse
    assert kd.teacher == ["/t/bundle", "/t2/bundle"]  # the main teacher first, no teacher twice
    assert (kd.token_kd, kd.attn_kd, kd.arch) == (0.5, 1.5, "vit_tiny_patch16_224")
    _, teacher_args = train_command("teacher", "/data", "/runs/y", methods)
    teacher = build_parser().parse_args(teacher_args[2:])
    assert teacher.fusion == "coattn" and teacher.teacher is None and teacher.token_kd == 0.0
    _, plain = train_command("kd", "/data", "/runs/z", TrainConfig(), teacher="/t/bundle")
    assert "--token-kd" not in plain and "--attn-kd" not in plain and plain.count("--teacher") == 1


def test_advanced_settings_round_trip_with_a_second_teacher(qtbot, tmp_path):
    from cataract_app.retrain.form import SettingsBox

    box = SettingsBox()
    qtbot.addWidget(box)
    box.set_teachers([("active teacher", tmp_path / "t1"), ("run 2", tmp_path / "t2")])
    assert [box.second_teacher.itemText(i) for i in range(box.second_teacher.count())] == [
        "(none)", "active teacher", "run 2"]
    assert box.settings().extra_teachers == [] and box.settings().fusion == "concat"
    wanted = TrainConfig(fusion="none", token_kd=0.3, attn_kd=2.0, extra_teachers=[str(tmp_path / "t2")],
                         arch="vit_small_patch16_224", pretrained="none")
    box.set_settings(wanted)
    assert box.settings() == wanted
    box.set_teachers([("run 2", tmp_path / "t2"), ("run 3", tmp_path / "t3")])  # a refresh keeps the pick
    assert box.settings().extra_teachers == [str(tmp_path / "t2")]
    own = TrainConfig(arch="resnet18", pretrained=str(tmp_path / "clinic.safetensors"))
    box.set_settings(own)  # a clinic's own weights file comes back as an entry of its own
    assert box.settings().pretrained == own.pretrained and box.weights.currentText() == "clinic.safetensors"


def test_progress_clock_gives_fraction_and_time_left():
    now = [100.0]
    clock = ProgressClock(lambda: now[0])
    clock.update(parse_event({"event": "start", "epochs": 4, "start_epoch": 1}))
    assert clock.seconds_left() is None
    now[0] = 105.0
    assert clock.update(parse_event({"event": "batch", "epoch": 1, "step": 1, "steps": 2})) == pytest.approx(0.125)
    assert clock.seconds_left() == pytest.approx(35.0)  # 1/8 in 5 s, 7/8 to go
    now[0] = 120.0
    assert clock.update(parse_event({"event": "epoch", "epoch": 1})) == pytest.approx(0.25)
    assert clock.seconds_left() == pytest.approx(60.0)
    clock.update(parse_event({"event": "start", "epochs": 10, "start_epoch": 6}))  # a resumed job counts from its start
    now[0] = 130.0
    assert clock.update(parse_event({"event": "epoch", "epoch": 6})) == pytest.approx(0.2)
    assert clock.update(parse_event({"event": "done"})) == 1.0


def test_events_read_as_sentences():
    line = describe(parse_event({"event": "epoch", "epoch": 2, "epochs": 5, "train_loss": 1.5, "val_loss": 1.25,
                                 "val_acc": 0.5, "val_qwk": 0.75, "val_mae": 0.6, "seconds": 3.0, "images_per_s": 12.0,
                                 "best_epoch": 2}))
    assert line.startswith("Epoch 2/5") and "accuracy 50.0 %" in line and "QWK 0.750" in line and "best" in line
    assert describe(parse_event({"event": "batch", "epoch": 1, "step": 1, "steps": 3, "loss": 1.0})) is None
    assert describe(parse_event({"event": "error", "message": "no labels"})) == "Error: no labels"


def test_line_chart_ticks_and_points(qtbot):
    assert nice_ticks(0, 1, 4) == [0, 0.25, 0.5, 0.75, 1.0]
    assert nice_ticks(0, 20, 8) == [0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5, 20]
    chart = LineChart("Loss")
    qtbot.addWidget(chart)
    chart.add_series("train", "train", "#000000")
    chart.add_point("train", 1, 2.0)
    chart.add_point("train", 2, float("nan"))  # dropped, never drawn
    chart.resize(300, 200)
    assert chart.points("train") == [(1.0, 2.0)]
    assert not chart.grab().isNull()


# ---- jobs ------------------------------------------------------------------------------------------------


def test_teacher_then_student_trains_compares_and_is_promoted(qtbot, window, store, tiny_dataset, tmp_path):
    before = window.summary.student_card.model_id
    panel = panel_with_dataset(qtbot, window, tiny_dataset, SEQUENCE, TINY)
    assert panel.dataset_ok and panel.report.summary["images"] == 32
    assert "no problems" in panel.dataset_box.verdict.text()
    events = []
    assert panel.start()
    panel.run.event.connect(events.append)
    assert panel.running and not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
    qtbot.waitUntil(lambda: panel.outcome is not None, timeout=JOB_MS)
    assert panel.outcome.ok, panel.error.text()
    kinds = [e.kind for e in events]
    assert kinds.count("start") == 2 and kinds.count("done") == 2 and "epoch" in kinds
    assert [e.job for e in events if e.kind == "start"] == ["teacher", "kd"]
    assert panel.progress.value() == 1000
    assert panel.metric_chart.points("qwk") and panel.loss_chart.points("val")
    assert "Epoch 1/1" in panel.log_view.toPlainText()
    new_student, new_teacher = panel.candidates["student"], panel.candidates["teacher"]
    assert new_student.parent.parent == store.runs_dir and (new_student / "model.safetensors").is_file()
    assert store.promoted("student") is None  # nothing changes before Promote

    qtbot.waitUntil(lambda: {"student", "teacher"} <= set(panel.compared), timeout=WAIT_MS)
    pane = panel.compare_tabs.widget(0)
    assert pane.role == "student" and pane.value("new", "n") == pane.value("active", "n") > 0
    assert pane.value("active", "model_id") == before
    assert panel.promote_button.isEnabled() and panel.with_teacher.isChecked()

    window.training.ask = lambda *_a: True  # "promote a weaker model?" if the tiny job scored lower
    assert panel.promote()
    new_id = json.loads((new_student / "card.json").read_text())["model_id"]
    qtbot.waitUntil(lambda: window.summary.student_card.model_id == new_id, timeout=WAIT_MS)
    assert store.promoted("student") == new_student and store.promoted("teacher") == new_teacher
    assert new_id in window.status.model.text() and not panel.promote_button.isEnabled()
    image = write_disc(tmp_path / "eye.png")
    window.open_path(image)
    qtbot.waitUntil(lambda: window.student is not None and window.student.source == str(image), timeout=WAIT_MS)
    assert window.student.model.model_id == new_id


def test_stop_ends_the_job_and_its_group_within_two_seconds(qtbot, window, store, tiny_dataset):
    panel = panel_with_dataset(qtbot, window, tiny_dataset, TEACHER, LONG)
    events = []
    assert panel.start()
    panel.run.event.connect(events.append)
    qtbot.waitUntil(lambda: any(e.kind == "start" for e in events), timeout=JOB_MS)
    pid = panel.run.process.pid
    assert pid and os.getpgid(pid) == pid  # the job leads its own process group

    window.training.ask = lambda *_a: False  # closing the app asks first; "no" keeps it and the job
    window.close()
    assert window.isVisible() and panel.running

    panel.stop_button.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=2000)
    qtbot.waitUntil(lambda: group_gone(pid), timeout=2000)
    qtbot.waitUntil(lambda: panel.outcome is not None, timeout=2000)
    assert panel.outcome.stopped and "stopped" in panel.error.text()
    assert panel.start_button.isEnabled() and panel.dataset_box.isEnabled()
    assert store.promoted("student") is None and not store.active_file.exists()
    assert not list(store.runs_dir.glob("*/bundle"))


def test_closing_the_app_during_a_job_stops_it_when_the_user_agrees(qtbot, window, tiny_dataset):
    panel = panel_with_dataset(qtbot, window, tiny_dataset, TEACHER, LONG)
    assert panel.start()
    qtbot.waitUntil(lambda: panel.run.process.pid is not None, timeout=WAIT_MS)
    pid = panel.run.process.pid
    asked = []
    window.training.ask = lambda title, text: asked.append(text) or True
    window.close()
    assert asked and "running" in asked[0]
    assert not window.isVisible() and not panel.running
    qtbot.waitUntil(lambda: group_gone(pid), timeout=2000)


def test_a_job_killed_from_outside_shows_a_crash_with_the_log_tail(qtbot, window, store, tiny_dataset):
    panel = panel_with_dataset(qtbot, window, tiny_dataset, TEACHER, LONG)
    events = []
    assert panel.start()
    panel.run.event.connect(events.append)
    qtbot.waitUntil(lambda: any(e.kind == "start" for e in events), timeout=JOB_MS)
    os.kill(panel.run.process.pid, signal.SIGKILL)  # as an out-of-memory killer would
    qtbot.waitUntil(lambda: panel.outcome is not None, timeout=WAIT_MS)
    assert not panel.outcome.ok and not panel.outcome.stopped
    text = panel.error.text()
    assert "ended unexpectedly" in text and "Last lines of the log" in text and "Training the concat" in text
    assert store.promoted("teacher") is None and not list(store.runs_dir.glob("*/bundle"))


def test_a_dataset_with_errors_cannot_start_and_a_job_that_fails_shows_why(qtbot, window, store, tiny_dataset, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dataset, broken)
    labels = broken / "labels.csv"
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join(lines + [lines[1].split(",")[0] + ",9"]) + "\n")
    panel = panel_with_dataset(qtbot, window, broken, TEACHER, TINY)
    assert not panel.dataset_ok and "problem" in panel.dataset_box.verdict.text()
    assert "labels.csv:" in panel.dataset_box.report.toPlainText()
    assert not panel.start_button.isEnabled() and not panel.start()

    labels.write_text("\n".join(lines) + "\n")  # fixed: it passes the check ...
    panel.set_dataset(broken)
    qtbot.waitUntil(lambda: panel.dataset_ok, timeout=WAIT_MS)
    first_image = broken / lines[1].split(",")[0]
    first_image.unlink()  # ... and then the folder changes under the job
    assert panel.start()
    qtbot.waitUntil(lambda: panel.outcome is not None, timeout=JOB_MS)
    assert not panel.outcome.ok and not panel.outcome.stopped
    assert panel.error.isVisible() and first_image.name in panel.error.text()
    assert "Last lines of the log" in panel.error.text()
    assert store.promoted("student") is None and store.promoted("teacher") is None
    assert not panel.promote_button.isEnabled()


# ---- models dialog ---------------------------------------------------------------------------------------


def copy_as_run(store: ModelStore, source: Path, name: str) -> Path:
    bundle = store.new_run_dir("kd") / "bundle"
    shutil.copytree(source, bundle)
    card = json.loads((bundle / "card.json").read_text())
    card["name"] = name
    (bundle / "card.json").write_text(json.dumps(card))
    return bundle


def test_models_dialog_lists_cards_switches_and_switches_back(qtbot, window, store, tiny_bundles):
    run = copy_as_run(store, tiny_bundles[0], "clinic-student")
    window.actions_by_name["models"].trigger()  # Training > Models...
    dialog = window.training.models_dialog
    names = [card.name for _p, card in dialog.rows]
    assert names[0] == "clinic-student" and {"tiny-student", "tiny-teacher"} <= set(names)
    active_rows = [dialog.rows[i][1].name for i in range(len(dialog.rows)) if dialog.is_active_row(i)]
    assert sorted(active_rows) == ["tiny-student", "tiny-teacher"]
    assert dialog.select_bundle(run) and dialog.make_active.isEnabled()

    window.training.ask = lambda *_a: False
    assert not dialog.activate_selected() and store.promoted("student") is None
    window.training.ask = lambda *_a: True
    assert dialog.activate_selected()
    assert store.promoted("student") == run
    qtbot.waitUntil(lambda: window.summary.student_card.name == "clinic-student", timeout=WAIT_MS)
    assert dialog.is_active_row(0) and "clinic-student" in window.status.model.text()

    assert dialog.select_bundle(run) and dialog.switch_back_selected()
    qtbot.waitUntil(lambda: window.summary.student_card.name == "tiny-student", timeout=WAIT_MS)
    assert store.promoted("student") is None and run.is_dir()


def test_a_damaged_store_is_reported_and_the_defaults_are_used(qtbot, store, tmp_path):
    store.root.mkdir(parents=True)
    store.active_file.write_text("{ not json")
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(LoadOptions(device="cpu"), settings, store=store)
    qtbot.addWidget(w)
    messages = []
    w.statusBar().messageChanged.connect(messages.append)
    qtbot.waitUntil(lambda: w.summary is not None or w.model_error is not None, timeout=WAIT_MS)
    assert w.model_error is None and w.summary.student_card.name == "tiny-student"
    assert any("damaged" in m for m in messages)
    dialog = w.training.open_models()
    assert dialog.problems.isVisibleTo(dialog) and "damaged" in dialog.problems.text()

