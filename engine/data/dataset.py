"""Train/val/test splits and the torch Dataset that feeds grades and sub-labels to the training loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from engine.data.manifest import SPLITS, Record
from engine.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Augment,
    model_square,
    preprocess_eval,
    to_tensor,
    train_transform,
    working_size,
)
from engine.io import min_side_for, read_image_reduced
from engine.preprocess import CENTRE, LENS, LENS_MARGIN
from engine.schema import Schema

if TYPE_CHECKING:
    from engine.data.lenses import LensTable

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "GradingDataset", "preprocess_eval", "split_records"]


# ---- splits ----------------------------------------------------------------------------------


def split_records(
    records: Sequence[Record], val_frac: float = 0.15, test_frac: float = 0.15, seed: int = 0
) -> dict[str, list[Record]]:
    """Split into train/val/test: the CSV's own split if every row has one, else by patient, stratified by grade."""
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise ValueError(f"val_frac {val_frac} and test_frac {test_frac} must be >= 0 and sum to less than 1")
    records = list(records)
    if records and all(r.split in SPLITS for r in records):
        return {s: [r for r in records if r.split == s] for s in SPLITS}
    groups = _groups(records)
    rng = np.random.default_rng(seed)
    ties = rng.permutation(len(groups))
    order = sorted(range(len(groups)), key=lambda g: (max(records[i].grade for i in groups[g]), ties[g]))
    fracs = {"train": 1.0 - val_frac - test_frac, "val": val_frac, "test": test_frac}
    assigned = _deal([groups[g] for g in order], fracs)
    if len(records) >= 10:
        _fill_empty(assigned, fracs, rng)
    return {s: [records[i] for i in sorted(i for g in assigned[s] for i in g)] for s in SPLITS}


def _groups(records: list[Record]) -> list[list[int]]:
    """Indices grouped by patient; a record without a patient id is a group of its own."""
    by_patient: dict[str, list[int]] = {}
    groups: list[list[int]] = []
    for i, r in enumerate(records):
        if r.patient_id is None:
            groups.append([i])
        elif r.patient_id in by_patient:
            by_patient[r.patient_id].append(i)
        else:
            by_patient[r.patient_id] = [i]
            groups.append(by_patient[r.patient_id])
    return groups


def _deal(groups: list[list[int]], fracs: dict[str, float]) -> dict[str, list[list[int]]]:
    """Deal grade-sorted groups to the split furthest below its share so far: stratified by construction."""
    assigned: dict[str, list[list[int]]] = {s: [] for s in SPLITS}
    counts = dict.fromkeys(SPLITS, 0)
    total = 0
    for g in groups:
        total += len(g)
        split = max(SPLITS, key=lambda s: (fracs[s] * total - counts[s], -SPLITS.index(s)))
        assigned[split].append(g)
        counts[split] += len(g)
    return assigned


def _fill_empty(assigned: dict[str, list[list[int]]], fracs: dict[str, float], rng: np.random.Generator) -> None:
    """Move one group into any requested split left empty, from the split with the most groups.

    Patients are never divided, so with fewer than three patients a split can stay empty.
    """
    for split in ("val", "test"):
        if fracs[split] <= 0 or assigned[split]:
            continue
        donor = max(SPLITS, key=lambda s: len(assigned[s]))
        if len(assigned[donor]) < 2:
            continue
        smallest = min(len(g) for g in assigned[donor])
        candidates = [k for k, g in enumerate(assigned[donor]) if len(g) == smallest]
        assigned[split].append(assigned[donor].pop(candidates[int(rng.integers(len(candidates)))]))


# ---- dataset ---------------------------------------------------------------------------------


class GradingDataset(Dataset):
    """Images with grade, sub-label values (0 and masked where unknown) and grade range, ready for a network.

    With cache=True each image is decoded once and kept as a small uint8 square (the input
    size for eval, 15% more for training), so CPU training is not bound by JPEG decoding.
    crop: the square the model sees (engine.preprocess): CENTRE, or LENS around the circle
    `lenses` holds for the photograph (located on first use when it holds none yet).
    """

    def __init__(
        self,
        records: Sequence[Record],
        schema: Schema,
        image_size: int,
        train: bool,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        cache: bool = True,
        augment: Augment | None = None,
        crop: str = CENTRE,
        lenses: LensTable | None = None,
        margin: float = LENS_MARGIN,
    ) -> None:
        if image_size < 8:
            raise ValueError(f"image_size {image_size} is too small; use at least 8 pixels")
        if crop == LENS and lenses is None:
            from engine.data.lenses import LensTable

            lenses = LensTable()
        self.crop, self.lenses, self.margin = crop, lenses, float(margin)
        self.records = list(records)
        self.schema = schema
        self.image_size = int(image_size)
        self.train = train
        self.mean, self.std = tuple(mean), tuple(std)
        self.cache = cache
        self.augment = augment or Augment()
        self._work = working_size(self.image_size, train)
        self._images: dict[int, np.ndarray] = {}
        self._labels = _label_tensors(self.records, schema)

    def __len__(self) -> int:
        return len(self.records)

    def image(self, index: int) -> np.ndarray:
        """The working uint8 square of one record, decoded once when caching."""
        cached = self._images.get(index)
        if cached is not None:
            return cached
        record = self.records[index]
        # A large photo decodes at a reduced scale (inside libjpeg for JPEG), as the grader decodes it.
        rgb = read_image_reduced(record.image, min_side_for(self.image_size)).rgb
        circle = self.lenses.circle_for(record.image, rgb) if self.crop == LENS else None
        square = model_square(rgb, self._work, self.crop, circle, self.margin)
        if self.cache:
            self._images[index] = square
        return square

    def preload(self, workers: int = 2, progress: Callable[[int, int], None] | None = None) -> None:
        """Decode every image now (before DataLoader workers fork, so they share the cache)."""
        if not self.cache:
            return
        todo = [i for i in range(len(self)) if i not in self._images]
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for n, _ in enumerate(pool.map(self.image, todo), 1):
                if progress is not None:
                    progress(n, len(todo))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        square = self.image(index)
        if self.train:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())  # follows torch's per-worker seeding
            x = train_transform(square, self.image_size, np.random.default_rng(seed), self.mean, self.std, self.augment)
        else:
            x = to_tensor(square, self.mean, self.std)
        grades, subs, mask, lo, hi = self._labels
        return {
            "image": x,
            "grade": grades[index],
            "sublabels": subs[index],
            "sub_mask": mask[index],
            "grade_min": lo[index],
            "grade_max": hi[index],
            "index": torch.tensor(index, dtype=torch.int64),
        }


def _label_tensors(records: list[Record], schema: Schema) -> tuple[torch.Tensor, ...]:
    """Grades, sub-label values (0 where unknown), known-mask and grade bounds for every record."""
    k = len(schema)
    n = len(records)
    subs = torch.zeros((n, k), dtype=torch.int64)
    mask = torch.zeros((n, k), dtype=torch.bool)
    for i, r in enumerate(records):
        if len(r.sublabels) != k:
            raise ValueError(f"{r.rel_path} has {len(r.sublabels)} sub-labels but the schema has {k}")
        for j, value in enumerate(r.sublabels):
            if value is not None:
                subs[i, j] = value
                mask[i, j] = True
    grades = torch.tensor([r.grade for r in records], dtype=torch.int64)
    lo = torch.tensor([r.grade if r.grade_min is None else r.grade_min for r in records], dtype=torch.int64)
    hi = torch.tensor([r.grade if r.grade_max is None else r.grade_max for r in records], dtype=torch.int64)
    return grades, subs, mask, lo, hi

