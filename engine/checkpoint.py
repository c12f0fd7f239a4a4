"""Resumable training checkpoints: safetensors for every tensor, JSON for the rest.

A checkpoint folder holds `model.safetensors`, `extra.safetensors` (optimizer state
and any auxiliary trainable modules) and `state.json` (epoch, best score, the
optimizer's non-tensor state, the scheduler's counters). Nothing is pickled, so a
damaged or foreign checkpoint can fail, but never execute code. A write killed at any
step leaves a checkpoint to resume from (the previous or the new one, never none).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from engine.errors import EngineError
from engine.fsutil import InjectedKill, fsync_dir, remove_tree, stale_temps, write_file_synced, write_step

FORMAT = "cataract-grader-checkpoint"
MODEL_FILE, EXTRA_FILE, STATE_FILE = "model.safetensors", "extra.safetensors", "state.json"


class CheckpointError(EngineError):
    """A checkpoint that cannot be resumed from."""


def _contig(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}


def _split_optimizer(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in opt_state["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"opt.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"scalars": scalars, "param_groups": opt_state["param_groups"]}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith("opt."):
            continue
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, items in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(items)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict,
    aux: dict[str, torch.nn.Module] | None = None,
) -> None:
    """Write a complete new checkpoint beside `folder`, then swap it in; a kill at any step leaves one to resume.

    state.json goes last, so a folder with a readable state.json is complete. recover_checkpoint,
    run before every write and read, keeps the newest complete checkpoint and removes the rest.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover_checkpoint(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        write_step("checkpoint.started")
        write_file_synced(tmp / MODEL_FILE, save(_contig(model.state_dict())))
        write_step("checkpoint.model-written")
        opt_tensors, opt_meta = _split_optimizer(optimizer.state_dict())
        extra = dict(opt_tensors)
        for name, module in (aux or {}).items():
            extra.update({f"aux.{name}.{k}": v for k, v in module.state_dict().items()})
        write_file_synced(tmp / EXTRA_FILE, save(_contig(extra)))
        write_step("checkpoint.extra-written")
        write_file_synced(tmp / STATE_FILE, json.dumps({"format": FORMAT, **state, "optimizer": opt_meta}).encode())
        fsync_dir(tmp)
        write_step("checkpoint.state-written")
    except BaseException as e:
        if not isinstance(e, InjectedKill):
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = _old(folder)
    if old.exists():  # recovery kept it only because nothing was complete: the new checkpoint supersedes both
        remove_tree(old)
    if folder.exists():
        os.replace(folder, old)
        write_step("checkpoint.old-moved")
    os.replace(tmp, folder)
    fsync_dir(folder.parent)
    write_step("checkpoint.new-moved")
    remove_tree(old, "checkpoint.old-removing")


def _old(folder: Path) -> Path:
    return folder.with_name(folder.name + ".old")


def _epoch_if_complete(folder: Path) -> int | None:
    """The epoch a checkpoint folder holds, when all three files are there in full; None otherwise."""
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        for name in (MODEL_FILE, EXTRA_FILE):
            _check_safetensors_size(folder / name)
    except (OSError, ValueError, CheckpointError):
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        return None
    epoch = state.get("epoch")
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def _check_safetensors_size(path: Path) -> None:
    """A safetensors file must be exactly as long as its header says (a cut-off write is not)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path.name} is cut off")
        n = int.from_bytes(head, "little")
        if n > size - 8:
            raise CheckpointError(f"{path.name} is cut off")
        header = json.loads(fh.read(n))
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    if 8 + n + max(ends, default=0) != size:
        raise CheckpointError(f"{path.name} is cut off")


def recover_checkpoint(folder: str | Path) -> Path | None:
    """Keep the newest complete checkpoint at `folder` and remove what killed writes left; None if there is none.

    Candidates are `folder`, `folder.old` (a kill between the two renames) and complete temp
    folders (a kill before the swap). `folder` itself is never deleted unless a newer complete
    checkpoint replaces it, so a damaged one stays for load_checkpoint to report.
    """
    folder = Path(folder)
    candidates = [folder, _old(folder), *(p for p in stale_temps(folder.parent, folder.name) if p.is_dir())]
    epochs = {p: _epoch_if_complete(p) for p in candidates if p.is_dir()}
    complete = [p for p, e in epochs.items() if e is not None]
    if not complete:
        for p in epochs:
            if p != folder and p != _old(folder):
                remove_tree(p)  # a half-written temp folder: nothing in it can be resumed
        return None
    best = max(complete, key=lambda p: (epochs[p], p == folder))
    if best != folder:
        if folder.exists():
            remove_tree(folder)
        os.replace(best, folder)
        fsync_dir(folder.parent)
    for p in epochs:
        if p not in (best, folder):
            remove_tree(p)
    return folder


def load_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    aux: dict[str, torch.nn.Module] | None = None,
) -> dict:
    """Restore model, optimizer and aux modules in place; return the saved state dict."""
    folder = Path(folder)
    if recover_checkpoint(folder) is None and not folder.exists():
        raise CheckpointError(f"there is no checkpoint in {folder.parent} to resume from (the job stopped before "
                              "its first epoch ended); start it again without --resume")
    try:
        state = json.loads((folder / STATE_FILE).read_text())
        weights = load_file(str(folder / MODEL_FILE))
        extra = load_file(str(folder / EXTRA_FILE))
    except FileNotFoundError as e:
        raise CheckpointError(f"no complete checkpoint in {folder} ({Path(e.filename).name} is missing)") from None
    except (OSError, ValueError, json.JSONDecodeError, SafetensorError) as e:
        raise CheckpointError(f"the checkpoint in {folder} is damaged ({e})") from None
    if state.get("format") != FORMAT:
        raise CheckpointError(f"{folder} is not a training checkpoint of this app")
    try:
        model.load_state_dict(weights)
        optimizer.load_state_dict(_join_optimizer(extra, state["optimizer"]))
        for name, module in (aux or {}).items():
            prefix = f"aux.{name}."
            module.load_state_dict({k[len(prefix):]: v for k, v in extra.items() if k.startswith(prefix)})
    except (RuntimeError, KeyError, ValueError) as e:
        raise CheckpointError(f"the checkpoint in {folder} does not fit this job's model ({e})") from None
    return state
