"""Training for the input gate: the lens crop by default, its lens pass, and the OOD statistics in the bundle."""

import json
import shutil

import numpy as np
import pytest

from engine.bundle import BundleError, load_bundle, read_card
from engine.cli import main
from engine.data.transforms import build_transform
from engine.io import read_image
from engine.model_store import StoreError, check_bundle
from engine.ood import OOD_CARD, OOD_WEIGHTS, pooled_features
from engine.preprocess import CENTRE, LENS, LENS_MARGIN
from engine.progress import LensesEvent, parse_line
from engine.roi import find_lens

FAST = ["--epochs", "1", "--image-size", "64", "--batch-size", "16", "--device", "cpu", "--progress", "json",
        "--arch", "resnet10t"]


def _events(out: str) -> list:
    return [parse_line(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def lens_run(tiny_dataset, tmp_path_factory):
    """A one-epoch student with the default crop, and the events it printed."""
    out = tmp_path_factory.mktemp("lens-run")
    assert main(["train", "student", str(tiny_dataset), "--out", str(out), *FAST]) == 0
    return out / "bundle", _events((out / "log.jsonl").read_text())  # the run's log holds every event


def test_the_default_crop_is_the_lens_and_the_card_records_it(lens_run):
    bundle, events = lens_run
    card = read_card(bundle)
    assert card.crop == LENS and card.crop_margin == LENS_MARGIN
    assert card.extra["train_config"]["crop"] == LENS
    finder = card.extra["lens_finder"]
    assert finder["total"] == 32 and finder["found"] == 32 and finder["min_confidence"] == 0.2
    lenses = [e for e in events if isinstance(e, LensesEvent)]
    assert lenses and lenses[-1].done == lenses[-1].total == 32
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds.index("lenses") < kinds.index("epoch")  # before the first epoch
    model, _ = load_bundle(bundle)
    assert model.preprocess_cfg.crop == LENS and model.preprocess_cfg.margin == LENS_MARGIN


def test_the_bundle_carries_ood_statistics_of_its_training_split(lens_run, tiny_dataset):
    bundle, _ = lens_run
    card = read_card(bundle)
    assert (bundle / OOD_WEIGHTS).is_file() and (bundle / OOD_CARD).is_file()
    assert card.ood["n_images"] == card.extra["ood"]["n_images"] == 22  # the training split of 32
    model, _ = load_bundle(bundle)
    scorer = model.ood_scorer
    assert scorer is not None and scorer.dim == model.feature_dim == card.ood["dim"]
    assert scorer.threshold == pytest.approx(card.ood["threshold"])
    # Scored as grading scores: the lens crop of a training photograph, against a foreign picture.
    transform = build_transform(model.preprocess_cfg)
    rgb = read_image(next((tiny_dataset / "images").iterdir()))
    own = scorer.score(pooled_features(model, transform(rgb, find_lens(rgb).circle)[None])[0])
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    foreign = scorer.score(pooled_features(model, transform(noise)[None])[0])
    assert foreign > scorer.threshold and foreign > own


def test_damaged_or_missing_ood_files_are_refused_and_none_means_no_check(lens_run, tmp_path):
    bundle, _ = lens_run
    damaged = tmp_path / "damaged"
    shutil.copytree(bundle, damaged)
    data = bytearray((damaged / OOD_WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (damaged / OOD_WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="ood.safetensors is not the file its card describes"):
        load_bundle(damaged)
    with pytest.raises(StoreError, match="cannot become the active student"):
        check_bundle(damaged, "student")
    shutil.copy(bundle / OOD_WEIGHTS, damaged / OOD_WEIGHTS)
    load_bundle(damaged)  # intact again
    (damaged / OOD_CARD).unlink()
    with pytest.raises(BundleError, match="ood.json is missing"):
        load_bundle(damaged)
    bare = tmp_path / "bare"  # a bundle whose card describes no statistics: loads, with no OOD check
    shutil.copytree(bundle, bare)
    card = json.loads((bare / "card.json").read_text())
    (bare / "card.json").write_text(json.dumps({**card, "ood": None}))
    for name in (OOD_WEIGHTS, OOD_CARD):
        (bare / name).unlink()
    model, _ = load_bundle(bare)
    assert model.ood_scorer is None
    check_bundle(bare, "student")
    (bare / "card.json").write_text(json.dumps({**card, "ood": {"dim": 512}}))
    with pytest.raises(BundleError, match="'ood' must name the digests"):
        read_card(bare)


def test_centre_crop_training_keeps_the_old_input_and_skips_the_lens_pass(tiny_dataset, tmp_path, capsys):
    assert main(["train", "student", str(tiny_dataset), "--out", str(tmp_path / "c"), "--crop", "centre", *FAST]) == 0
    events = _events(capsys.readouterr().out)
    assert not any(isinstance(e, LensesEvent) for e in events)
    card = read_card(tmp_path / "c" / "bundle")
    assert card.crop == CENTRE and card.crop_margin is None and "lens_finder" not in card.extra
    assert card.ood is not None  # centre-crop models carry statistics too
    model, _ = load_bundle(tmp_path / "c" / "bundle")
    assert model.preprocess_cfg.crop == CENTRE and isinstance(model.ood_scorer.threshold, float)


def test_kd_refuses_a_teacher_that_saw_another_crop(tiny_dataset, tiny_bundles, tmp_path, capsys):
    assert read_card(tiny_bundles[1]).crop == CENTRE
    code = main(["train", "kd", str(tiny_dataset), "--out", str(tmp_path / "k"), "--teacher", str(tiny_bundles[1]),
                 *FAST])
    assert code == 2
    err = _events(capsys.readouterr().out)[-1]
    assert err.kind == "error" and "trained on the centre crop but this student is trained on the lens crop" in err.message


def test_the_lenses_event_round_trips_on_the_wire():
    event = LensesEvent(done=3, total=9, found=2)
    assert parse_line(event.to_json()) == event
