"""End-to-end training jobs on 32 tiny images: bundles, JSON progress, resume, refusals."""

import json

import pytest

from engine.bundle import load_bundle, read_card
from engine.cli import main
from engine.progress import Cancelled, CancelToken, parse_line
from engine.train import TrainConfig, TrainError, run_training

FAST = ["--epochs", "1", "--image-size", "64", "--batch-size", "16", "--device", "cpu", "--progress", "json"]


def _events(out: str) -> list:
    """The typed events of the JSON lines on stdout."""
    return [parse_line(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def teacher_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    assert main(["train", "teacher", str(tiny_dataset), "--out", str(out), *FAST]) == 0
    return out


def test_teacher_job_writes_a_loadable_bundle_and_json_lines(teacher_run, capsys):
    model, card = load_bundle(teacher_run / "bundle", expect_role="teacher")
    assert card.arch == "teacher_concat" and card.fusion == "concat"
    assert set(card.metrics) >= {"val"} and 0.0 <= card.metrics["val"]["acc"] <= 1.0
    assert card.calibration_temperature > 0
    log = [json.loads(line) for line in (teacher_run / "log.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in log]
    assert kinds[0] == "start" and kinds[-1] == "done" and "epoch" in kinds
    epoch = next(e for e in log if e["event"] == "epoch")
    assert {"epoch", "epochs", "train_loss", "val_acc", "val_qwk", "lr", "seconds"} <= set(epoch)


def test_student_and_kd_jobs(tiny_dataset, teacher_run, tmp_path, capsys):
    assert main(["train", "student", str(tiny_dataset), "--out", str(tmp_path / "s"), *FAST]) == 0
    capsys.readouterr()
    assert main(["train", "kd", str(tiny_dataset), "--out", str(tmp_path / "k"),
                 "--teacher", str(teacher_run / "bundle"), *FAST]) == 0
    events = _events(capsys.readouterr().out)
    assert events[0].kind == "start" and events[-1].kind == "done"
    card = read_card(tmp_path / "k" / "bundle")
    teacher_card = read_card(teacher_run / "bundle")
    assert card.role == "student" and card.teacher["model_id"] == teacher_card.model_id
    assert read_card(tmp_path / "s" / "bundle").teacher is None


def test_kd_refuses_a_student_as_teacher(tiny_dataset, tmp_path, teacher_run, capsys):
    assert main(["train", "student", str(tiny_dataset), "--out", str(tmp_path / "s"), *FAST]) == 0
    capsys.readouterr()
    code = main(["train", "kd", str(tiny_dataset), "--out", str(tmp_path / "k"),
                 "--teacher", str(tmp_path / "s" / "bundle"), *FAST])
    assert code == 2
    err = _events(capsys.readouterr().out)[-1]
    assert err.kind == "error" and "teacher" in err.message


def test_bad_dataset_reports_an_error_event(tmp_path, capsys):
    (tmp_path / "labels.csv").write_text("image,grade\nmissing.png,9\n")
    assert main(["train", "student", str(tmp_path), "--out", str(tmp_path / "run"), *FAST]) == 2
    event = _events(capsys.readouterr().out)[-1]
    assert event.kind == "error" and "labels.csv" in event.message


def test_resume_continues_from_the_saved_epoch(tiny_dataset, tmp_path):
    cfg = TrainConfig(job="student", dataset=str(tiny_dataset), out=str(tmp_path), epochs=3, image_size=64,
                      batch_size=16, device="cpu", patience=10)
    token = CancelToken()
    seen = []

    def stop_after_first_epoch(event):
        seen.append(event)
        if event.kind == "epoch" and event.epoch == 1:
            token.cancel()

    with pytest.raises(Cancelled):
        run_training(cfg, progress=stop_after_first_epoch, cancel=token)
    assert not (tmp_path / "bundle").exists()
    cfg.resume = True
    events = []
    result = run_training(cfg, progress=events.append)
    assert events[0].kind == "start" and events[0].start_epoch == 2
    assert [e.epoch for e in events if e.kind == "epoch"] == [2, 3]
    assert result.bundle.exists()


def test_config_refusals(tiny_dataset, tmp_path):
    with pytest.raises(TrainError, match="needs --teacher"):
        run_training(TrainConfig(job="kd", dataset=str(tiny_dataset), out=str(tmp_path)))
    with pytest.raises(TrainError, match="unknown job"):
        run_training(TrainConfig(job="fit", dataset=str(tiny_dataset), out=str(tmp_path)))


def test_evaluate_scores_the_split_the_bundle_was_trained_with(teacher_run, tiny_dataset, capsys):
    assert main(["evaluate", str(teacher_run / "bundle"), str(tiny_dataset), "--split", "val", "--json",
                 "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    start = json.loads((teacher_run / "log.jsonl").read_text().splitlines()[0])
    assert result["n"] == start["n_val"] and result["split"] == "val"
    assert len(result["confusion"]) == 8 and 0.0 <= result["acc"] <= 1.0
    assert main(["evaluate", str(teacher_run / "bundle"), str(tiny_dataset / "missing")]) == 2


def test_config_refuses_unknown_schedule_augmentation_and_misplaced_unlabelled(tiny_dataset, tmp_path):
    base = dict(dataset=str(tiny_dataset), out=str(tmp_path))
    with pytest.raises(TrainError, match="unknown lr schedule .step.; choose one of cosine, plateau"):
        run_training(TrainConfig(job="student", lr_schedule="step", **base))
    with pytest.raises(TrainError, match="unknown augment .heavy.; choose one of realistic, basic, none"):
        run_training(TrainConfig(job="student", augment="heavy", **base))
    with pytest.raises(TrainError, match="only used by a kd job"):
        run_training(TrainConfig(job="student", unlabelled=str(tiny_dataset), **base))


def test_plateau_schedule_cuts_the_rate_when_validation_stalls():
    from engine.lr_schedule import PLATEAU_FACTOR, lr_factor, plateau_step

    # patience 6: a cut after 3 epochs with neither a new best nor a cut, then 3 more before the next
    scale, cut = 1.0, 0
    history = []
    for epoch, best in [(1, 1), (2, 2), (3, 2), (4, 2), (5, 2), (6, 2), (7, 2), (8, 2), (9, 9)]:
        scale, cut = plateau_step(epoch, best, cut, 6, scale)
        history.append(scale)
    assert history == [1.0, 1.0, 1.0, 1.0, PLATEAU_FACTOR, PLATEAU_FACTOR, PLATEAU_FACTOR, PLATEAU_FACTOR**2,
                       PLATEAU_FACTOR**2]
    assert lr_factor(50, 10, 100, "plateau", 0.09) == 0.09  # no cosine decay on the plateau schedule
    assert lr_factor(4, 10, 100, "plateau", 1.0) == 0.5  # the same warm-up
    assert lr_factor(100, 10, 100) == 0.0


def test_kd_learns_from_unlabelled_images_too(tiny_dataset, teacher_run, tmp_path):
    cfg = TrainConfig(job="kd", dataset=str(tiny_dataset), out=str(tmp_path), teacher=str(teacher_run / "bundle"),
                      unlabelled=str(tiny_dataset), epochs=1, image_size=64, batch_size=16, device="cpu")
    result = run_training(cfg)
    assert read_card(result.bundle).extra["train_config"]["unlabelled"] == str(tiny_dataset)
