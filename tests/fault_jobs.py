"""Fault cases on jobs: training runs killed at every write step (2), images not decodable (6).
Listed in tests/faults.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faults import Ctx

from fault_files import engine_root

# ---- 2 killed training runs ------------------------------------------------------------------


def _linear():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    return model, opt


def _save(folder: Path, epoch: int) -> None:
    from engine.checkpoint import save_checkpoint

    model, opt = _linear()
    save_checkpoint(folder, model, opt, {"epoch": epoch, "config": {"job": "student"}})


def _resume(folder: Path) -> str:
    import engine.checkpoint
    from engine.checkpoint import load_checkpoint

    if not folder.exists() and not hasattr(engine.checkpoint, "recover_checkpoint"):
        # This code's run_training resumes only `if cfg.resume and ckpt_dir.exists()`.
        return "no checkpoint/ on disk, so train --resume starts again at epoch 1, silently"
    model, opt = _linear()
    return f"resumes after epoch {load_checkpoint(folder, model, opt)['epoch']}"


def kill_at_step(step: str) -> Callable[[Ctx], str]:
    def run(ctx: Ctx) -> str:
        from engine.fsutil import InjectedKill, inject_faults, kill_at

        ckpt = ctx.tmp() / "checkpoint"
        _save(ckpt, 1)
        try:
            with inject_faults(kill_at(step)):
                _save(ckpt, 2)
        except InjectedKill:
            pass
        left = sorted(p.name for p in ckpt.parent.iterdir())
        resumed = _resume(ckpt)
        _save(ckpt, 3)
        after = sorted(p.name for p in ckpt.parent.iterdir())
        return f"killed with {left} on disk; {resumed}; next save leaves {after}"

    return run


def checkpoint_old_left_behind(ctx: Ctx) -> str:
    """What a kill during the old cleanup left: a half-deleted checkpoint.old beside a good checkpoint."""
    ckpt = ctx.tmp() / "checkpoint"
    _save(ckpt, 1)
    (ckpt.parent / "checkpoint.old").mkdir()
    (ckpt.parent / "checkpoint.old" / "extra.safetensors").write_bytes(b"half")
    _save(ckpt, 2)
    return f"{_resume(ckpt)}; folder holds {sorted(p.name for p in ckpt.parent.iterdir())}"


def killed_between_renames(ctx: Ctx) -> str:
    """What a kill between the two renames left: checkpoint.old (epoch 1) and the complete new temp (epoch 2)."""
    ckpt = ctx.tmp() / "checkpoint"
    _save(ckpt, 1)
    _save(ckpt.parent / "new", 2)
    os.replace(ckpt, ckpt.parent / "checkpoint.old")
    os.replace(ckpt.parent / "new", ckpt.parent / ".checkpoint.k1ll3d.tmp")
    return _resume(ckpt)


def fresh_job_over_foreign_checkpoint(ctx: Ctx, epochs: int = 0) -> str:
    from engine.train import TrainConfig, run_training

    out = ctx.tmp() / "out"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "notes.txt").write_text("someone else's")
    data = ctx.dataset() if epochs else ctx.tmp() / "no-dataset"
    cfg = TrainConfig(job="student", dataset=str(data), out=str(out), epochs=max(epochs, 1), image_size=32,
                      batch_size=16, device="cpu")
    try:
        run_training(cfg)
    finally:
        kept = (out / "checkpoint" / "notes.txt").exists()
    return f"trained; the foreign checkpoint/ was {'kept' if kept else 'deleted'}"


def temps_of_killed_writes(ctx: Ctx) -> str:
    from engine.train import TrainConfig, run_training

    out = ctx.tmp() / "out"
    for name in (".checkpoint.a1b2c3.tmp", ".bundle.d4e5f6.tmp"):
        (out / name).mkdir(parents=True)
    (out / "best.tmp").write_bytes(b"half")
    (out / "log.jsonl").write_text("")
    (out / "run.json").write_text(json.dumps({"format": "cataract-grader-run", "job": "student"}))
    cfg = TrainConfig(job="student", dataset=str(ctx.tmp() / "no-dataset"), out=str(out), epochs=1, device="cpu")
    try:
        run_training(cfg)
    except ValueError:
        pass  # the dataset is missing on purpose: only what the job does to its folder first matters
    left = sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))
    return f"leftover temp files after the next start: {left or 'none'}"


def resume_with_nothing_to_resume(ctx: Ctx) -> str:
    from engine.train import TrainConfig, run_training

    cfg = TrainConfig(job="student", dataset=str(ctx.dataset()), out=str(ctx.tmp() / "out"), epochs=1, image_size=32,
                      batch_size=16, device="cpu", resume=True)
    result = run_training(cfg)
    return f"--resume trained from epoch 1 to epoch {result.best_epoch} without saying so"


def train_killed_by_sigkill(step: str, nth: int = 1) -> Callable[[Ctx], str]:
    """Long: a real `cataract-grade train` process SIGKILLed at a write step, then `--resume`."""

    def run(ctx: Ctx) -> str:
        import engine.fsutil

        if not hasattr(engine.fsutil, "write_step"):
            return "n/a (no fault hook in this code)"
        data, out = ctx.dataset(), ctx.tmp() / "run"
        cmd = [sys.executable, "-m", "engine", "train", "student", str(data), "--out", str(out), "--epochs", "3",
               "--image-size", "32", "--batch-size", "16", "--device", "cpu", "--progress", "json"]
        env = {**os.environ, "CATARACT_GRADER_FAULT": f"{step}@{nth}:kill"}
        first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200, cwd=engine_root())
        killed = "SIGKILLed" if first.returncode == -9 else f"exit {first.returncode} (step never reached)"
        second = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=1200,
                                cwd=engine_root())
        events = [json.loads(x) for x in second.stdout.splitlines() if x.startswith("{")]
        start = next((e.get("start_epoch") for e in events if e.get("event") == "start"), None)
        if second.returncode == 0:
            return f"{killed}; --resume started at epoch {start} and wrote the bundle"
        error = next((e["message"] for e in events if e.get("event") == "error"), second.stderr.strip()[-300:])
        return f"{killed}; --resume exit {second.returncode}: {error}"

    return run


# ---- 6 undecoded images -----------------------------------------------------------------------


def truncated_test_image(ctx: Ctx, epochs: int = 1) -> str:
    from engine.data.dataset import split_records
    from engine.data.manifest import load_dataset
    from engine.train import TrainConfig, run_training

    data = ctx.dataset()
    victim = split_records(load_dataset(data).records, val_frac=0.15, test_frac=0.3, seed=1)["test"][0]
    raw = victim.image.read_bytes()
    victim.image.write_bytes(raw[: len(raw) // 2])
    events: list[dict] = []
    cfg = TrainConfig(job="student", dataset=str(data), out=str(ctx.tmp() / "run"), epochs=epochs, image_size=32,
                      batch_size=16, device="cpu", test_frac=0.3, split_seed=1)
    try:
        run_training(cfg, progress=events.append)
    except ValueError as e:
        done = sum(getattr(e2, "kind", None) == "epoch" or (isinstance(e2, dict) and e2.get("event") == "epoch")
                   for e2 in events)
        raise ValueError(f"after {done} epoch(s): {e}") from None
    return "trained and wrote a bundle"
