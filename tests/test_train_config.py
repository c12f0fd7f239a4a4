"""TrainConfig is the one source of the `train` options: the CLI, its checks and the app's command line."""

import argparse
from dataclasses import fields

import pytest

from engine.choices import JOBS
from engine.cli import build_parser
from engine.train_config import FIELDS, TrainConfig, TrainError, from_args, option_of, to_arguments


def train_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def other_value(name: str, job: str):
    """A valid value of field `name` that is not its default."""
    opt, default = option_of(name), getattr(TrainConfig(), name)
    if name == "job":
        return job
    if opt.choices:
        return next(c for c in opt.choices if c != default)
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return int(opt.low) + 2 if opt.high is None or opt.low + 2 <= opt.high else int(opt.low)
    if isinstance(default, float):
        return (opt.low + (opt.high if opt.high is not None else opt.low + 1)) / 3 + 0.125
    if isinstance(default, list):
        return ["/t2", "/t3"]
    if isinstance(default, dict):
        return {"clinic": "north", "n": 3}
    return f"/some/{name}"


def full_config(job: str) -> TrainConfig:
    """Every field its job reads set away from its default (the others at their defaults)."""
    values = {f.name: other_value(f.name, job) for f in fields(TrainConfig) if job in option_of(f.name).jobs}
    return TrainConfig(**values)


def test_every_field_is_an_option_of_the_train_command():
    dests = {a.dest for a in train_parser()._actions}
    missing = [name for name in FIELDS if name not in dests and name != "extra_teachers"]
    assert missing == []
    args = train_parser().parse_args(["kd", "/d", "--out", "/o", "--teacher", "/t1", "--teacher", "/t2"])
    assert from_args(args).extra_teachers == ["/t2"]  # the later --teacher options


@pytest.mark.parametrize("job", JOBS)
def test_a_config_round_trips_through_its_command_line(job):
    cfg = full_config(job)
    parsed = from_args(train_parser().parse_args(to_arguments(cfg)))
    assert parsed == cfg
    assert parsed.job == job and parsed.epochs != TrainConfig().epochs


@pytest.mark.parametrize("job", ["teacher", "kd"])
def test_the_apps_command_line_round_trips_through_the_engines_parser(job):
    from cataract_app.retrain.launch import job_config, train_command

    settings = full_config(job)
    teacher = "/t1" if job == "kd" else None
    _, args = train_command(job, "/data", "/runs/1", settings, teacher)
    child = from_args(build_parser().parse_args(args[args.index("train"):]))  # what the child process runs
    assert child == job_config(job, "/data", "/runs/1", settings, teacher)
    assert (child.dataset, child.out, child.teacher) == ("/data", "/runs/1", teacher)


def test_bounds_and_choices_come_from_the_field_and_are_checked():
    assert (option_of("image_size").low, option_of("image_size").high) == (16, 1024)
    for bad, message in [({"image_size": 8}, "--image-size must be >= 16, not 8"),
                         ({"image_size": 2048}, "--image-size must be <= 1024, not 2048"),
                         ({"fusion": "sum"}, "unknown fusion 'sum'"), ({"kd_alpha": 1.5}, "--kd-alpha must be <= 1"),
                         ({"lr": "fast"}, "--lr must be a number"), ({"dataset": ""}, "needs a dataset folder")]:
        cfg = TrainConfig(**{"dataset": "/d", "out": "/o", **bad})
        with pytest.raises(TrainError, match=message):
            cfg.check()
    assert "16-1024" in train_parser().format_help()  # the help states the same bounds


def test_the_retrain_form_uses_the_configs_bounds_and_defaults(qtbot):
    from cataract_app.retrain.form import SettingsBox

    box = SettingsBox()
    qtbot.addWidget(box)
    for name in ("epochs", "image_size", "batch_size", "seed", "patience", "kd_temperature", "kd_alpha", "token_kd"):
        widget, opt = getattr(box, name), option_of(name)
        assert (widget.minimum(), widget.maximum()) == pytest.approx((opt.low, opt.high)), name
    assert box.settings() == TrainConfig()
