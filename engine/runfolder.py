"""A training job's run folder: which job made it, one job in it at a time, nothing left of a killed write.

RUNDIR/run.json names the job that made the folder (a folder made before run.json existed is
known by its checkpoint). A job starts fresh only in a new or empty folder, or in its own
earlier run that finished; it never replaces a checkpoint/, best.safetensors, log.jsonl or
bundle/ that it did not make, nor an unfinished run that --resume could continue. While a
job runs it holds RUNDIR/.lock, so what killed writes left behind (temp folders, a half
deleted checkpoint.old, an interrupted bundle swap) can be cleared without harming anyone.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

from engine.checkpoint import FORMAT as CHECKPOINT_FORMAT
from engine.checkpoint import STATE_FILE, CheckpointError, recover_checkpoint
from engine.fsutil import atomic_write_text, hold_folder_lock, release_folder_lock, remove_tree, stale_temps

RUN_FILE = "run.json"
RUN_FORMAT = "cataract-grader-run"
CHECKPOINT_DIR, BEST_FILE, LOG_FILE, BUNDLE_DIR = "checkpoint", "best.safetensors", "log.jsonl", "bundle"
OUTPUTS = (CHECKPOINT_DIR, CHECKPOINT_DIR + ".old", BEST_FILE, LOG_FILE, BUNDLE_DIR)


class RunFolderError(CheckpointError):
    """A run folder a job must not start or resume in, with the reason in one sentence."""


def prepare_run_folder(out: str | Path, job: str, resume: bool) -> None:
    """Claim `out` for a `job` run (fresh, or resuming): refuse what is not ours, clear what kills left behind."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out} is a file; a training run needs a folder (--out)")
    out.mkdir(parents=True, exist_ok=True)
    hold_folder_lock(out)
    owner = _owner(out)
    if owner is not None and owner != job:
        raise RunFolderError(f"{out} holds a {owner} run; give the {job} job a folder of its own (--out)")
    clear_leftovers(out)
    checkpoint = recover_checkpoint(out / CHECKPOINT_DIR)
    if resume:
        if owner is None and checkpoint is None and (out / CHECKPOINT_DIR).exists():
            raise RunFolderError(f"{out / CHECKPOINT_DIR} was not written by a training job of this app, "
                                 "so it cannot be resumed")
        if checkpoint is None and not (out / CHECKPOINT_DIR).exists():
            raise RunFolderError(f"there is no checkpoint in {out} to resume from (the job stopped before its "
                                 "first epoch ended); start it again without --resume")
    elif owner is None:
        found = [n + ("/" if (out / n).is_dir() else "") for n in OUTPUTS if (out / n).exists()]
        if found:
            raise RunFolderError(f"{out} already holds {', '.join(found)}, which no job of this app made there; "
                                 "choose a new or empty folder (--out)")
    else:
        if checkpoint is not None and not _finished(out):
            epoch = json.loads((checkpoint / STATE_FILE).read_text())["epoch"]
            raise RunFolderError(f"{out} holds an unfinished {job} run (checkpoint after epoch {epoch}); continue "
                                 "it with --resume, or choose another folder (--out)")
        for name in (CHECKPOINT_DIR, BEST_FILE, LOG_FILE):  # our own earlier run's: a fresh start must not mix them in
            remove_tree(out / name)
    if _marker_job(out) is None:
        marker = {"format": RUN_FORMAT, "job": job, "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        atomic_write_text(out / RUN_FILE, json.dumps(marker) + "\n")


def remove_if_nothing_to_keep(out: Path) -> None:
    """After a job failed in a folder it made: remove the folder unless it holds a checkpoint or a bundle."""
    if not out.is_dir() or any((out / n).exists() for n in (CHECKPOINT_DIR, CHECKPOINT_DIR + ".old", BUNDLE_DIR)):
        return
    release_folder_lock(out)
    shutil.rmtree(out, ignore_errors=True)


def clear_leftovers(out: Path) -> None:
    """Remove temp files of killed writes; put back a bundle whose swap was killed halfway. Hold the lock first."""
    (out / "best.tmp").unlink(missing_ok=True)
    for name in (RUN_FILE, LOG_FILE, BEST_FILE):
        for p in stale_temps(out, name):
            remove_tree(p)
    bundle = out / BUNDLE_DIR
    leftovers = stale_temps(out, BUNDLE_DIR)
    if not bundle.exists():
        olds = [p for p in leftovers if p.name.endswith(".old") and (p / "card.json").is_file()]
        if olds:
            newest = max(olds, key=lambda p: p.stat().st_mtime)
            newest.rename(bundle)  # the swap was killed after the old bundle moved aside: it is the last good one
    for p in leftovers:
        if p.exists():
            remove_tree(p)


def _marker_job(out: Path) -> str | None:
    try:
        marker = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(marker, dict) and marker.get("format") == RUN_FORMAT and isinstance(marker.get("job"), str)
    return marker["job"] if ok else None


def _owner(out: Path) -> str | None:
    """The job that made `out`: from run.json, else from a checkpoint of ours (folders made before run.json)."""
    job = _marker_job(out)
    if job is not None:
        return job
    for folder in (out / CHECKPOINT_DIR, out / (CHECKPOINT_DIR + ".old")):
        try:
            state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
            job = (state.get("config") or {}).get("job")
            return job if isinstance(job, str) else None
    return None


def _finished(out: Path) -> bool:
    """True when the last event in log.jsonl is `done` (the run wrote its bundle)."""
    try:
        lines = [ln for ln in (out / LOG_FILE).read_text(encoding="utf-8").splitlines() if ln.strip()]
        return bool(lines) and json.loads(lines[-1]).get("event") == "done"
    except (OSError, ValueError, AttributeError):
        return False
