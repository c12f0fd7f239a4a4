"""Data-parallel training and sharded grading on 2 CPU processes (gloo), against one process.

The reference is torchrun's one-process run: it uses the same DistributedSampler order, so
with --batch-size as the global batch the 2 processes take the very same steps. The model is
a ViT (LayerNorm, no BatchNorm: each CPU rank would otherwise normalise its own half) with
no augmentation, so no per-rank randomness enters. What remains is float32 rounding: the
gradients are averaged over 2 ranks by an all-reduce instead of over one batch, so sums run
in another order. Adam divides each gradient by its own running size, so where a gradient
is nearly zero that rounding reaches the update: measured over 2 steps (5.5M weights), the
mean difference was 4.5e-10, the largest 6.7e-6 (0.006 % of weights above 1e-6), while a
different sample order (a plain run's own shuffling) moved weights by 7.3e-4 on average and
up to 3.0e-3, and one Adam step moves a weight by about lr = 1e-3. Hence the tolerances:
the largest difference under 1e-4, the mean under 1e-7.
"""

import json
from dataclasses import replace

import numpy as np
import pytest
import safetensors.numpy

from engine.bundle import read_card
from engine.train import TrainConfig, TrainError, run_training

MAX_ATOL, MEAN_ATOL = 1e-4, 1e-7  # see the module docstring


@pytest.fixture(scope="module")
def runs(tiny_dataset, tmp_path_factory):
    """(one-process run folder, 2-process run folder, events of the 2-process run)."""
    root = tmp_path_factory.mktemp("ddp")
    cfg = TrainConfig(job="student", dataset=str(tiny_dataset), out=str(root / "one"), arch="vit_tiny_patch16_224",
                      epochs=1, image_size=32, batch_size=16, device="cpu", augment="none", patience=5)
    with pytest.MonkeyPatch.context() as mp:  # in this process, as torchrun's only worker would see it
        mp.setenv("RANK", "0")
        mp.setenv("WORLD_SIZE", "1")
        run_training(cfg)
    events = []
    result = run_training(replace(cfg, out=str(root / "two"), nproc=2), events.append)
    assert result.bundle == root / "two" / "bundle"
    return root / "one", root / "two", events


def _weights(run) -> dict:
    return safetensors.numpy.load_file(str(run / "bundle" / "model.safetensors"))


def test_two_processes_train_the_same_weights_and_metrics_as_one(runs):
    one, two, events = runs
    w1, w2 = _weights(one), _weights(two)
    assert w1.keys() == w2.keys()
    diff = np.concatenate([np.abs(w1[k] - w2[k]).ravel() for k in w1])
    assert diff.max() < MAX_ATOL and diff.mean() < MEAN_ATOL, f"max {diff.max():g}, mean {diff.mean():g}"
    c1, c2 = read_card(one / "bundle"), read_card(two / "bundle")
    for split in ("val", "test"):
        for key in ("acc", "qwk", "mae"):
            assert c1.metrics[split][key] == pytest.approx(c2.metrics[split][key], abs=1e-6)
    e1 = [json.loads(ln) for ln in (one / "log.jsonl").read_text().splitlines()]
    e2 = [json.loads(ln) for ln in (two / "log.jsonl").read_text().splitlines()]
    ep1, ep2 = (next(e for e in log if e["event"] == "epoch") for log in (e1, e2))
    assert ep1["train_loss"] == pytest.approx(ep2["train_loss"], rel=1e-5)
    assert ep1["val_loss"] == pytest.approx(ep2["val_loss"], rel=1e-5)
    assert e1[0]["world_size"] == 1 and e2[0]["world_size"] == 2


def test_rank_zero_alone_reports_and_the_start_event_carries_the_world_size(runs):
    _, two, events = runs
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("start") == 1 and kinds.count("epoch") == 1
    assert events[0].world_size == 2
    logged = [json.loads(ln)["event"] for ln in (two / "log.jsonl").read_text().splitlines()]
    assert logged.count("start") == 1 and logged.count("epoch") == 1 and logged[-1] == "done"
    assert read_card(two / "bundle").extra["train_config"]["nproc"] == 2


def test_resume_on_two_processes_continues_from_the_checkpoint(runs, tiny_dataset):
    _, two, _ = runs
    cfg = TrainConfig(job="student", dataset=str(tiny_dataset), out=str(two), arch="vit_tiny_patch16_224", epochs=2,
                      image_size=32, batch_size=16, device="cpu", augment="none", patience=5, resume=True, nproc=2)
    events = []
    run_training(cfg, events.append)
    assert events[0].start_epoch == 2 and events[0].world_size == 2
    assert [e.epoch for e in events if e.kind == "epoch"] == [2]
    state = json.loads((two / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2


def test_a_batch_that_does_not_split_evenly_is_refused_with_the_reason(tiny_dataset, tmp_path):
    cfg = TrainConfig(job="student", dataset=str(tiny_dataset), out=str(tmp_path), epochs=1, image_size=32,
                      batch_size=15, device="cpu", nproc=2)
    with pytest.raises(TrainError, match="global batch and must split evenly over 2 processes"):
        run_training(cfg)


def test_fp16_on_cpu_is_refused_before_training(tiny_dataset, tmp_path):
    cfg = TrainConfig(job="student", dataset=str(tiny_dataset), out=str(tmp_path), epochs=1, image_size=32,
                      device="cpu", amp="fp16")
    with pytest.raises(TrainError, match="fp16 needs a CUDA GPU"):
        run_training(cfg)


def test_the_retrain_form_passes_the_process_count_to_the_child(qtbot):
    from cataract_app.retrain.form import SettingsBox
    from cataract_app.retrain.launch import train_command

    box = SettingsBox()
    qtbot.addWidget(box)
    box.nproc.setValue(2)
    settings = box.settings()
    assert settings.nproc == 2
    _, args = train_command("teacher", "/data", "/runs/1", settings)
    assert args[args.index("--nproc") + 1] == "2"
    _, args = train_command("teacher", "/data", "/runs/1", replace(settings, nproc=1))
    assert "--nproc" not in args  # one process: the command line the panel always ran
    box.set_settings(replace(settings, nproc=1))
    assert box.nproc.value() == 1
