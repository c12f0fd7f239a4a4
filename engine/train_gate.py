"""What training adds for the input gate: the lens pass before the first epoch, the OOD statistics after the last.

With crop "lens" every photograph of the dataset is decoded once before the first epoch and
its lens located (engine.data.lenses, cached per dataset), with `LensesEvent`s as it goes.
After the last epoch the best weights' pooled features over the training split (the
evaluation crop, no augmentation) give the out-of-distribution statistics saved in the
bundle (engine.ood.fit_for_model), so a clinic's retrained model carries its own.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from engine.data.lenses import LensTable, locate_dataset
from engine.progress import LensesEvent, ProgressCallback

OOD_MIN_IMAGES = 10  # below this the statistics are not fitted (engine.ood refuses them)
NO_IMAGE_ARCHS = ("teacher_mlp",)  # models that never see the photograph have no image features to score


def locate_lenses(manifest, table: LensTable, run_dir: Path, progress: ProgressCallback, every_s: float = 0.5) -> dict:
    """Find every photograph's lens once (LensesEvents at most every `every_s`); the summary for the card."""
    last = [0.0]

    def report(done: int, total: int, found: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= every_s:
            last[0] = now
            progress(LensesEvent(done=done, total=total, found=found))

    summary = locate_dataset(manifest, table, run_dir, report)
    return {**summary.to_dict(), "min_confidence": table.min_confidence}


def fit_ood(model: torch.nn.Module, loader, device: torch.device) -> tuple[object | None, dict]:
    """(OodScorer or None, a note for the card) from the pooled features of the loader's images."""
    from engine.ood import OodError, fit_for_model

    if getattr(model, "arch", "") in NO_IMAGE_ARCHS:
        return None, {"fitted": False, "why": "the model does not look at the photograph"}
    if len(loader.dataset) < OOD_MIN_IMAGES:
        return None, {"fitted": False, "why": f"{len(loader.dataset)} training images are too few"}
    model.eval()
    batches = (b["image"].to(device, memory_format=torch.channels_last) for b in loader)
    try:
        scorer = fit_for_model(model, batches)
    except OodError as e:
        return None, {"fitted": False, "why": str(e)}
    return scorer, {"fitted": True, "n_images": scorer.n_images, "threshold": scorer.threshold}
