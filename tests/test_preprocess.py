"""The preprocessing config a model carries from its card: size, normalisation and crop, and its one transform."""

import json
import shutil

import numpy as np
import pytest
import torch

from engine.bundle import BundleError, load_bundle, read_card
from engine.data.transforms import build_transform, preprocess_eval
from engine.preprocess import CENTRE, IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig, PreprocessError
from engine.resources import default_model_dir


def test_a_card_without_a_crop_field_means_the_centred_square(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(default_model_dir("student"), old)
    raw = json.loads((old / "card.json").read_text())
    for name in ("crop", "crop_margin"):  # as cards written before the field existed
        raw.pop(name, None)
    (old / "card.json").write_text(json.dumps(raw))
    model, card = load_bundle(old)
    assert card.crop == CENTRE
    assert model.preprocess_cfg == PreprocessConfig(card.image_size, tuple(card.mean), tuple(card.std), CENTRE)


def test_the_transform_is_preprocess_eval_and_the_box_is_the_centred_square():
    cfg = PreprocessConfig(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    rgb = np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8)
    assert torch.equal(build_transform(cfg)(rgb), preprocess_eval(rgb, 16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    assert cfg.crop_box(30, 50) == (10, 0, 30) and cfg.crop_box(51, 20) == (0, 15, 20)
    assert (PreprocessConfig(8).mean, PreprocessConfig(8).std) == (IMAGENET_MEAN, IMAGENET_STD)


def test_an_unknown_crop_is_refused_with_a_sentence(tiny_bundles, tmp_path):
    with pytest.raises(PreprocessError, match="crop 'ring' is not one this app applies"):
        PreprocessConfig(64, crop="ring")
    bundle = tmp_path / "student"
    shutil.copytree(tiny_bundles[0], bundle)
    card = json.loads((bundle / "card.json").read_text())
    assert card["crop"] == CENTRE == read_card(bundle).crop  # new bundles write the field
    (bundle / "card.json").write_text(json.dumps({**card, "crop": "ring"}))
    with pytest.raises(BundleError, match="card crop must be one of lens, centre, not 'ring'"):
        load_bundle(bundle)
