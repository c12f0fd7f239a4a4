"""The learning-rate schedules of `engine.train`: linear warm-up, then cosine decay or the plateau schedule.

"cosine" decays to 0 at the last of --epochs; "plateau" keeps the rate and cuts it by
PLATEAU_FACTOR whenever validation has not improved for half the early-stopping
patience, so a run ends when validation stops improving, whatever --epochs says.
"""

from __future__ import annotations

import math

PLATEAU_FACTOR = 0.3  # "plateau": the learning rate is multiplied by this when validation stalls


def lr_factor(step: int, warmup: int, total: int, schedule: str = "cosine", plateau_scale: float = 1.0) -> float:
    """Linear warm-up, then a cosine decay to 0 at `total` steps, or the plateau schedule's current scale."""
    if step < warmup:
        return (step + 1) / warmup * (plateau_scale if schedule == "plateau" else 1.0)
    if schedule == "plateau":
        return plateau_scale
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def plateau_step(epoch: int, best_epoch: int, last_cut: int, patience: int, scale: float) -> tuple[float, int]:
    """(scale, last_cut) after an epoch: cut the scale when neither a new best nor a cut came for patience // 2 epochs."""
    wait = max(1, patience // 2)
    if epoch - max(best_epoch, last_cut) >= wait:
        return scale * PLATEAU_FACTOR, epoch
    return scale, last_cut
