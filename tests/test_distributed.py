"""Data-parallel training and sharded grading on 2 CPU processes (gloo), against one process.

The reference is torchrun's one-process run: it uses the same DistributedSampler order, so
with --batch-size as the global batch the 2 processes take the very same steps. The model is
a ViT (LayerNorm, no BatchNorm: each CPU rank would otherwise normalise its own half) with
no augmentation, so no per-rank randomness enters. What remains is float32 rounding: the
gradients are averaged over 2 ranks by an all-reduce instead of over one batch, so sums run
in another order (about 1e-7 relative per value); Adam's first steps move each weight by
about lr whatever the gradient's size, so such rounding moves weights by far less than
1e-5 after 2 steps, while one step more or less, or another sample order, moves them by ~lr.
"""

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import safetensors.numpy

from engine.bundle import read_card
from engine.cli import main
from engine.dist_launch import launch_training
from engine.progress import parse_line
from engine.train import TrainConfig, TrainError, run_training

WEIGHT_ATOL = 1e-5  # see the module docstring: rounding is ~1e-7, one Adam step is ~lr = 1e-3


@pytest.fixture(scope="module")
def runs(tiny_dataset, tmp_path_factory):
    """(one-process run folder, 2-process run folder, events of the 2-process run)."""
    root = tmp_path_factory.mktemp("ddp")
    cfg = TrainConfig(job="student", dataset=str(tiny_dataset), out=str(root / "one"), arch="vit_tiny_patch16_224",
                      epochs=1, image_size=32, batch_size=16, device="cpu", augment="none", patience=5)
    launch_training(replace(cfg, nproc=1), lambda e: None)  # torchrun with one process
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
    worst = max(float(np.max(np.abs(w1[k] - w2[k]))) for k in w1)
    assert worst < WEIGHT_ATOL, f"weights differ by up to {worst:g}"
    init_moved = max(float(np.max(np.abs(w1[k]))) for k in w1)
    assert init_moved > 0
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
    assert read_card(two / "bundle").extra["train_config"]["nproc"] == 1  # each worker runs one share


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


def test_sharded_predict_writes_the_same_csv_as_one_process(tiny_bundles, tiny_dataset, tmp_path, capsys):
    student, _ = tiny_bundles
    common = ["predict", "--dir", str(tiny_dataset / "images"), "--model", str(student), "--device", "cpu",
              "--batch-size", "4"]
    assert main([*common, "--csv", str(tmp_path / "one.csv")]) == 0
    assert main([*common, "--csv", str(tmp_path / "two.csv"), "--nproc", "2"]) == 0
    one, two = (tmp_path / "one.csv").read_text(), (tmp_path / "two.csv").read_text()
    assert one == two
    rows = list(csv.DictReader(one.splitlines()))
    assert len(rows) == len(list((tiny_dataset / "images").iterdir())) and rows[0]["grade"] != ""
    capsys.readouterr()


def test_sharded_json_lines_keep_the_input_order(tiny_bundles, tiny_dataset, capfd):
    student, _ = tiny_bundles
    assert main(["predict", "--dir", str(tiny_dataset / "images"), "--model", str(student), "--device", "cpu",
                 "--json", "--nproc", "2"]) == 0
    lines = [json.loads(ln) for ln in capfd.readouterr().out.splitlines() if ln.startswith("{")]
    assert len(lines) == len(list((tiny_dataset / "images").iterdir()))
    names = [ln["file"] for ln in lines]
    assert names == sorted(names)


def test_fp16_on_cpu_is_refused_before_training(tiny_dataset, tmp_path):
    cfg = TrainConfig(job="student", dataset=str(tiny_dataset), out=str(tmp_path), epochs=1, image_size=32,
                      device="cpu", amp="fp16")
    with pytest.raises(TrainError, match="fp16 needs a CUDA GPU"):
        run_training(cfg)
    assert parse_line('{"event": "start", "job": "student"}').world_size == 1  # older streams read as one process
