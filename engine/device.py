"""Pick the compute device once, the same way for training, grading and the CLI."""

from __future__ import annotations

import os

import torch

from engine.errors import EngineError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(EngineError):
    """A device was asked for that this machine does not have."""


def pick_device(preference: str = "auto") -> torch.device:
    """CUDA when present, else MPS, else CPU; an explicit choice must exist."""
    pref = (preference or "auto").lower()
    if pref not in DEVICE_CHOICES and not pref.startswith("cuda:"):
        raise DeviceError(f"unknown device {preference!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else _cpu()
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("CUDA was asked for, but no CUDA GPU is available on this machine")
    if pref == "mps" and not has_mps:
        raise DeviceError("MPS was asked for, but this machine has no Apple GPU")
    return _cpu() if pref == "cpu" else torch.device(pref)


def _cpu() -> torch.device:
    # One intra-op thread per physical core is torch's default; respect an explicit override.
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    return torch.device("cpu")

