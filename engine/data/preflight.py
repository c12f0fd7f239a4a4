"""Before the first epoch: every image of a training job decoded once, so a bad file stops the job at its start.

A truncated photograph in the test split would otherwise surface only after the last epoch,
when the test split is scored, and the job would die without a bundle.
"""

from __future__ import annotations

import time

from engine.data.manifest import DatasetError, Manifest, Problem, check_image_files
from engine.progress import ImagesEvent, ProgressCallback, no_progress


def verify_images(manifest: Manifest, progress: ProgressCallback = no_progress, every_s: float = 0.5) -> None:
    """Decode every image the manifest lists; raise DatasetError naming each one that fails, with its line."""
    problems: list[Problem] = []
    total, last = len(manifest.records), 0.0

    def report(done: int, _total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done == total or now - last >= every_s:
            last = now
            progress(ImagesEvent(checked=done, total=total, unreadable=len(problems)))

    if total == 0:
        return
    check_image_files(manifest.records, problems, report)
    if problems:
        raise DatasetError(problems, manifest.root)
