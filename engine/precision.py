"""Mixed precision for the training step: bf16 autocast, or fp16 autocast with a gradient scaler.

"auto" keeps what training always did: bf16 on a CUDA GPU that supports it (fp16 with a
scaler on one that does not), full precision on CPU, where bf16 is only fast on chips with
bf16 units. "bf16" asks for it anywhere torch can (CUDA with bf16 support, or CPU);
"fp16" needs CUDA. A precision the device lacks is refused before the first step.
"""

from __future__ import annotations

import contextlib

import torch

from engine.train_config import TrainError


def _cuda_bf16() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype that `amp` means on `device` (None: full precision)."""
    cuda = device.type == "cuda"
    if amp == "off":
        return None
    if amp == "auto":
        return (torch.bfloat16 if _cuda_bf16() else torch.float16) if cuda else None
    if amp == "fp16":
        if not cuda:
            raise TrainError(f"--amp fp16 needs a CUDA GPU, but this job runs on {device.type}; use --amp bf16 or off")
        return torch.float16
    if amp == "bf16":
        if cuda and not _cuda_bf16():
            raise TrainError("this GPU has no bf16 support; use --amp fp16 (with a gradient scaler) or off")
        if device.type not in ("cuda", "cpu"):
            raise TrainError(f"--amp bf16 runs on CUDA or CPU, not on {device.type}; use --amp off")
        return torch.bfloat16
    raise TrainError(f"unknown amp {amp!r}; choose one of auto, bf16, fp16, off")


class Precision:
    """The autocast context of a step and its backward + optimiser step (scaled for fp16)."""

    def __init__(self, amp: str, device: torch.device) -> None:
        self.device, self.dtype = device, resolve(amp, device)
        fp16 = self.dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if fp16 else None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        """loss.backward() and opt.step(), through the gradient scaler when there is one."""
        if self.scaler is None:
            loss.backward()
            opt.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(opt)
        self.scaler.update()
