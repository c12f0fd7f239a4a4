"""Resumable training checkpoints: safetensors for every tensor, JSON for the rest.

A checkpoint folder holds `model.safetensors`, `extra.safetensors` (optimizer state
and any auxiliary trainable modules) and `state.json` (epoch, best score, the
optimizer's non-tensor state, the scheduler's counters). Nothing is pickled, so a
damaged or foreign checkpoint can fail, but never execute code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from engine.errors import EngineError

FORMAT = "cataract-grader-checkpoint"


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
    """Write atomically: a complete new folder replaces the old one."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_file(_contig(model.state_dict()), str(tmp / "model.safetensors"))
        opt_tensors, opt_meta = _split_optimizer(optimizer.state_dict())
        extra = dict(opt_tensors)
        for name, module in (aux or {}).items():
            extra.update({f"aux.{name}.{k}": v for k, v in module.state_dict().items()})
        save_file(_contig(extra), str(tmp / "extra.safetensors"))
        (tmp / "state.json").write_text(json.dumps({"format": FORMAT, **state, "optimizer": opt_meta}))
        old = folder.with_name(folder.name + ".old")
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    aux: dict[str, torch.nn.Module] | None = None,
) -> dict:
    """Restore model, optimizer and aux modules in place; return the saved state dict."""
    folder = Path(folder)
    try:
        state = json.loads((folder / "state.json").read_text())
        weights = load_file(str(folder / "model.safetensors"))
        extra = load_file(str(folder / "extra.safetensors"))
    except FileNotFoundError as e:
        raise CheckpointError(f"no complete checkpoint in {folder} ({Path(e.filename).name} is missing)") from None
    except (OSError, ValueError, json.JSONDecodeError) as e:
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
