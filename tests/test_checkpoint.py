"""Checkpoints and run folders under kills: at every write step the job resumes or refuses with a sentence."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine import fsutil
from engine.checkpoint import CheckpointError, load_checkpoint, recover_checkpoint, save_checkpoint
from engine.fsutil import FolderBusyError, InjectedKill, inject_faults, kill_at
from engine.runfolder import RunFolderError, prepare_run_folder

STEPS = ["checkpoint.started", "checkpoint.model-written", "checkpoint.extra-written", "checkpoint.state-written",
         "checkpoint.old-moved", "checkpoint.new-moved", "checkpoint.old-removing"]
PUBLISHED = STEPS.index("checkpoint.state-written")  # from here on the new checkpoint is complete on disk


def _model(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    return model, opt


def _save(folder: Path, epoch: int) -> None:
    model, opt = _model(epoch)
    save_checkpoint(folder, model, opt, {"epoch": epoch, "config": {"job": "student"}})


def _load(folder: Path) -> int:
    model, opt = _model()
    return load_checkpoint(folder, model, opt)["epoch"]


def _kill(step: str, fn, *args) -> None:
    with inject_faults(kill_at(step)), pytest.raises(InjectedKill):
        fn(*args)


# A kill at each step of a second save: tests/fault_jobs.py (kill_at_step), run by tests/test_faults.py.


@pytest.mark.parametrize("step", STEPS[:PUBLISHED])
def test_a_kill_during_the_first_checkpoint_refuses_to_resume_with_a_sentence(tmp_path, step):
    _kill(step, _save, tmp_path / "checkpoint", 1)
    with pytest.raises(CheckpointError, match="no checkpoint in .* to resume from .* without --resume"):
        _load(tmp_path / "checkpoint")
    assert list(tmp_path.iterdir()) == []  # the half-written temp folder is cleared


def test_checkpoint_old_left_by_an_earlier_version_is_cleared(tmp_path):
    ckpt = tmp_path / "checkpoint"
    _save(ckpt, 4)
    (tmp_path / "checkpoint.old").mkdir()
    (tmp_path / "checkpoint.old" / "extra.safetensors").write_bytes(b"half")
    (tmp_path / ".checkpoint.k2j3h4").mkdir()  # the old writer's temp names had no suffix
    _save(ckpt, 5)
    assert _load(ckpt) == 5 and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_a_cut_off_weights_file_is_not_taken_for_a_complete_checkpoint(tmp_path):
    ckpt = tmp_path / "checkpoint"
    _save(ckpt, 1)
    os.replace(ckpt, tmp_path / "checkpoint.old")
    _save(tmp_path / "newer", 2)
    newer = tmp_path / ".checkpoint.abc.tmp"
    os.replace(tmp_path / "newer", newer)
    data = (newer / "model.safetensors").read_bytes()
    (newer / "model.safetensors").write_bytes(data[:-7])
    assert recover_checkpoint(ckpt) == ckpt and _load(ckpt) == 1


def test_a_damaged_checkpoint_is_kept_and_reported(tmp_path):
    ckpt = tmp_path / "checkpoint"
    _save(ckpt, 1)
    (ckpt / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="is damaged"):
        _load(ckpt)
    assert (ckpt / "model.safetensors").exists()


def test_a_real_sigkill_between_the_renames_resumes_the_newer_checkpoint(tmp_path):
    """The environment hook kills a child process outright, exactly at the step."""
    code = ("import sys; sys.path.insert(0, 'tests'); from pathlib import Path; import test_checkpoint as t\n"
            f"t._save(Path({str(tmp_path / 'checkpoint')!r}), 1); t._save(Path({str(tmp_path / 'checkpoint')!r}), 2)")
    env = {**os.environ, fsutil.FAULT_ENV: "checkpoint.old-moved:kill"}  # the first save has nothing to move aside
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert not (tmp_path / "checkpoint").exists() and (tmp_path / "checkpoint.old").is_dir()
    assert _load(tmp_path / "checkpoint") == 2


# ---- run folders -----------------------------------------------------------------------------


def test_a_fresh_job_refuses_a_checkpoint_it_did_not_create(tmp_path):
    foreign = tmp_path / "checkpoint"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="already holds checkpoint/, which no job of this app made there"):
        prepare_run_folder(tmp_path, "student", resume=False)
    assert (foreign / "notes.txt").read_text() == "mine"
    with pytest.raises(RunFolderError, match="was not written by a training job of this app"):
        prepare_run_folder(tmp_path, "student", resume=True)


def test_a_fresh_job_refuses_an_unfinished_run_and_a_foreign_job(tmp_path):
    prepare_run_folder(tmp_path, "student", resume=False)
    _save(tmp_path / "checkpoint", 3)
    with pytest.raises(RunFolderError, match=r"unfinished student run \(checkpoint after epoch 3\); continue it with "
                                             "--resume"):
        prepare_run_folder(tmp_path, "student", resume=False)
    with pytest.raises(RunFolderError, match="holds a student run; give the teacher job a folder of its own"):
        prepare_run_folder(tmp_path, "teacher", resume=False)
    (tmp_path / "log.jsonl").write_text(json.dumps({"event": "done"}) + "\n")
    prepare_run_folder(tmp_path, "student", resume=False)  # a finished run of the same job may be run again
    assert not (tmp_path / "checkpoint").exists() and not (tmp_path / "log.jsonl").exists()


def test_leftovers_of_killed_writes_are_cleared_and_a_half_swapped_bundle_put_back(tmp_path):
    prepare_run_folder(tmp_path, "student", resume=False)
    _save(tmp_path / "checkpoint", 2)
    for name in (".checkpoint.x1.tmp", ".bundle.x2.tmp"):
        (tmp_path / name).mkdir()
    (tmp_path / "best.tmp").write_bytes(b"half")
    (tmp_path / ".run.json.x3.tmp").write_text("{")
    old = tmp_path / ".bundle.1234abcd.old"
    old.mkdir()
    (old / "card.json").write_text("{}")
    prepare_run_folder(tmp_path, "student", resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "bundle", "checkpoint", "run.json"]
    assert (tmp_path / "bundle" / "card.json").exists()


def test_a_second_process_in_the_same_run_folder_is_refused(tmp_path):
    import fcntl

    tmp_path.joinpath(".lock").touch()
    fd = os.open(tmp_path / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another job would hold it
        with pytest.raises(FolderBusyError, match="another job is writing into"):
            prepare_run_folder(tmp_path, "student", resume=False)
    finally:
        os.close(fd)


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(RunFolderError, match="is a file; a training run needs a folder"):
        prepare_run_folder(tmp_path / "run", "student", resume=False)


# ---- a whole training job, stopped at a write step and resumed ------------------------------


def test_training_killed_before_its_first_checkpoint_swap_resumes(tiny_dataset, tmp_path):
    from engine.train import TrainConfig, run_training

    cfg = TrainConfig(job="student", dataset=str(tiny_dataset), out=str(tmp_path / "run"), epochs=1, image_size=32,
                      batch_size=16, device="cpu", patience=10)
    _kill("checkpoint.state-written", run_training, cfg)  # epoch 1's checkpoint complete in its temp folder
    assert not (tmp_path / "run" / "checkpoint").exists() and not (tmp_path / "run" / "bundle").exists()
    cfg.resume = True
    events = []
    result = run_training(cfg, progress=events.append)
    assert events[0].kind == "start" and events[0].start_epoch == 2  # the temp checkpoint was taken up
    assert not [e for e in events if e.kind == "epoch"]
    assert result.bundle.joinpath("card.json").is_file()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        ".lock", "best.safetensors", "bundle", "checkpoint", "log.jsonl", "run.json"]


def test_a_bundle_swap_killed_halfway_is_put_back(tmp_path, tiny_bundles):
    import shutil

    from engine.bundle import load_bundle, save_bundle

    run = tmp_path / "run"
    prepare_run_folder(run, "student", resume=False)
    _save(run / "checkpoint", 3)  # the last epoch's: the job was publishing its bundle
    shutil.copytree(tiny_bundles[0], run / "bundle")
    model, card = load_bundle(run / "bundle")
    _kill("bundle.old-moved", save_bundle, run / "bundle", model, card)
    assert not (run / "bundle").exists()
    prepare_run_folder(run, "student", resume=True)
    assert load_bundle(run / "bundle")[1].model_id == card.model_id
    assert not [p for p in run.iterdir() if p.name.startswith(".bundle")]
