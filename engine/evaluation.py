"""Run a model over a split and score it; shared by training, `evaluate` and promotion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.metrics import compute_metrics
from engine.schema import NUM_GRADES

SPLITS = ("train", "val", "test", "all")


@dataclass(frozen=True)
class Predictions:
    """Logits and labels of one pass over a split, kept for metrics and calibration."""

    logits: np.ndarray  # (N, 8)
    grades: np.ndarray  # (N,)
    loss: float

    def metrics(self, temperature: float = 1.0) -> dict:
        probs = torch.softmax(torch.from_numpy(self.logits) / temperature, dim=1).numpy()
        return compute_metrics(self.grades, probs)


def forward_batch(model: torch.nn.Module, role: str, batch: dict, device: torch.device, use_sublabels: bool = True,
                  channels_last: bool = True):
    """One forward of a teacher (image + sub-labels) or a student (image only)."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    images = batch["image"].to(device, non_blocking=True, memory_format=layout)
    if role == "teacher":
        if use_sublabels:
            return model(images, batch["sublabels"].to(device), batch["sub_mask"].to(device))
        return model(images)
    return model(images)


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA, where it is safe and fast; nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.inference_mode()
def predict_loader(model: torch.nn.Module, role: str, loader, device: torch.device) -> Predictions:
    model.eval()
    logits, grades, loss_sum = [], [], 0.0
    for batch in loader:
        with autocast_for(device):
            out = forward_batch(model, role, batch, device)
        lg = out["logits"].float()
        y = batch["grade"].to(device)
        loss_sum += float(torch.nn.functional.cross_entropy(lg, y, reduction="sum"))
        logits.append(lg.cpu().numpy())
        grades.append(y.cpu().numpy())
    if not logits:
        return Predictions(np.zeros((0, NUM_GRADES), np.float32), np.zeros((0,), np.int64), float("nan"))
    n = sum(len(g) for g in grades)
    return Predictions(np.concatenate(logits), np.concatenate(grades), loss_sum / max(n, 1))


def make_loader(records: Sequence, schema, image_size: int, mean, std, train: bool, batch_size: int, seed: int = 0,
                augment: str = "realistic", *, crop: str = "centre", lenses=None, margin: float | None = None):
    """Batches of one split; `train` shuffles and augments (augment: realistic, basic or none).

    crop, lenses, margin: see GradingDataset.
    """
    from engine.data.dataset import GradingDataset
    from engine.data.transforms import Augment
    from engine.preprocess import LENS_MARGIN

    aug = Augment.named(augment) if train else None
    ds = GradingDataset(list(records), schema, image_size, train=train and aug is not None, mean=mean, std=std,
                        augment=aug, crop=crop, lenses=lenses, margin=LENS_MARGIN if margin is None else margin)
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=train, drop_last=False, generator=gen)


def evaluate_bundle(bundle: Path, dataset: Path, split: str = "val", device: str = "auto", batch_size: int = 32) -> dict:
    """Score a saved bundle on the split it was trained with (same seed and fractions)."""
    from engine.bundle import read_card

    return evaluate_on_split(bundle, dataset, read_card(bundle), split, device, batch_size)


def evaluate_on_split(
    bundle: str | Path, dataset: str | Path, split_from, split: str = "val", device: str = "auto", batch_size: int = 32
) -> dict:
    """Score `bundle` on the split that `split_from` (a ModelCard, or {seed, val_frac, test_frac}) was trained with.

    Scoring two bundles with the same `split_from` (the candidate's card) compares them on the
    very same images, whatever splits they were trained with themselves.
    """
    from engine.bundle import ModelCard, load_bundle
    from engine.data.dataset import split_records
    from engine.data.manifest import load_dataset
    from engine.device import pick_device

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if isinstance(split_from, ModelCard):
        split_cfg = {"seed": split_from.seed or 0, **split_from.extra.get("split", {})}
    elif isinstance(split_from, dict):
        split_cfg = dict(split_from)
    else:
        raise TypeError("split_from must be a ModelCard or a dict with seed, val_frac and test_frac")
    split_cfg = {
        "seed": int(split_cfg.get("seed", 0)),
        "val_frac": float(split_cfg.get("val_frac", 0.15)),
        "test_frac": float(split_cfg.get("test_frac", 0.15)),
    }
    dev = pick_device(device)
    model, card = load_bundle(bundle, device=str(dev))
    manifest = load_dataset(dataset, schema=card.schema_obj())
    parts = split_records(manifest.records, **split_cfg)
    records = manifest.records if split == "all" else parts[split]
    if not records:
        raise ValueError(f"the {split} split of {dataset} is empty")
    model.to(dev, memory_format=torch.channels_last)
    cfg = model.preprocess_cfg
    loader = make_loader(records, manifest.schema, card.image_size, card.mean, card.std, False, batch_size,
                         crop=cfg.crop, margin=cfg.margin)
    preds = predict_loader(model, card.role, loader, dev)
    return {
        "bundle": str(bundle), "split": split, "split_config": split_cfg, "name": card.name,
        "model_id": card.model_id, "role": card.role, **preds.metrics(card.calibration_temperature),
    }
