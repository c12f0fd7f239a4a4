"""Photographs and a tiny lens-crop bundle shared by the input-gate tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.bundle import ModelCard, save_bundle
from engine.data.transforms import build_transform
from engine.models import create_model
from engine.ood import fit_for_model
from engine.preprocess import LENS, PreprocessConfig
from engine.roi import Circle, find_lens
from engine.schema import DEFAULT_SCHEMA
from engine.synth.sample import render_sample

GATE_KEYS = {"version", "checked", "ok", "problems", "circle", "circle_source", "lens_confidence", "ood_score",
             "ood_threshold", "crop", "crop_box", "measures", "graded_anyway"}


def photo(seed: int = 4, size: int = 160, framing: str = "off_centre"):
    s = render_sample(np.random.default_rng(seed), size, framing=framing)
    return s.image, Circle(*s.circle)


def noise(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (120, 150, 3), dtype=np.uint8)


def make_lens_bundle(path: Path) -> Path:
    """An untrained 64 px student with the lens crop and OOD statistics of 12 synthetic photographs."""
    torch.manual_seed(0)
    ranges = [[s.minimum, s.maximum] for s in DEFAULT_SCHEMA.sublabels]
    model = create_model("student", backbone="resnet18", image_size=64, sublabel_ranges=ranges).eval()
    transform = build_transform(PreprocessConfig(64, crop=LENS))
    photos = [photo(100 + i, 128, "varied")[0] for i in range(12)]
    scorer = fit_for_model(model, [torch.stack([transform(p, find_lens(p).circle) for p in photos])])
    card = ModelCard(role="student", name="tiny-lens", image_size=64, schema=DEFAULT_SCHEMA.to_dict(), crop=LENS,
                     crop_margin=1.2)
    save_bundle(path, model, card, ood=scorer)
    return path
