"""The lens crop: one square around the found lens for training and grading, and the per-dataset circle cache."""

import json
import os

import cv2
import numpy as np
import pytest
import torch

from engine.data.dataset import GradingDataset
from engine.data.lenses import CACHE_FILE, LensTable, Located, locate_dataset
from engine.data.manifest import DatasetError, load_dataset
from engine.data.transforms import build_transform, center_square, model_square, preprocess_eval, to_tensor
from engine.preprocess import CENTRE, LENS, LENS_MARGIN, PreprocessConfig, PreprocessError, centre_box
from engine.roi import Circle, crop_to_lens, find_lens
from engine.schema import DEFAULT_SCHEMA
from engine.synth.sample import render_sample
from engine.synth.writer import write_dataset


def off_centre_photo(seed: int = 3, size: int = 160):
    s = render_sample(np.random.default_rng(seed), size, framing="off_centre")
    return s.image, Circle(*s.circle)


def test_the_lens_crop_is_the_square_around_the_circle_and_falls_back_to_the_centre():
    rgb, circle = off_centre_photo()
    cfg = PreprocessConfig(48, crop=LENS)
    x0, y0, side = cfg.crop_box(*rgb.shape[:2], circle)
    assert side == round(2 * LENS_MARGIN * circle.r)
    assert abs(x0 + side / 2 - 0.5 - circle.cx) <= 0.5 and abs(y0 + side / 2 - 0.5 - circle.cy) <= 0.5
    expected = to_tensor(crop_to_lens(rgb, circle, 48)[0])
    assert torch.equal(build_transform(cfg)(rgb, circle), expected)
    # No lens found: the centred square, the same pixels a centre-crop model sees.
    assert cfg.crop_box(*rgb.shape[:2]) == centre_box(*rgb.shape[:2])
    assert torch.equal(build_transform(cfg)(rgb), preprocess_eval(rgb, 48))
    assert not torch.equal(expected, preprocess_eval(rgb, 48))  # the lens is off-centre, so the crops differ


def test_a_centre_crop_model_ignores_the_circle_and_keeps_its_old_input():
    rgb, circle = off_centre_photo()
    transform = build_transform(PreprocessConfig(40))
    assert torch.equal(transform(rgb, circle), preprocess_eval(rgb, 40))
    assert np.array_equal(model_square(rgb, 40, CENTRE, circle), center_square(rgb, 40))


def test_the_margin_is_checked():
    with pytest.raises(PreprocessError, match="margin must be 1-3 radii"):
        PreprocessConfig(32, crop=LENS, margin=0.5)


def test_a_circle_found_on_one_decode_is_scaled_to_another():
    found = Located(Circle(49.5, 29.5, 20.0), 0.9, (60, 100))
    half = found.circle_at((30, 50))
    assert (half.cx, half.cy, half.r) == pytest.approx((24.5, 14.5, 10.0))
    assert found.circle_at((60, 100)) == found.circle
    assert Located(None, 0.0, (60, 100)).circle_at((30, 50)) is None


@pytest.fixture()
def framed(tmp_path):
    """12 off-centre synthetic photographs at 96 px, in a folder of their own (the cache is written into it)."""
    return write_dataset(tmp_path / "data", n=12, seed=11, image_size=96, framing="off_centre")


def test_the_dataset_pass_finds_each_lens_once_and_caches_it(framed, tmp_path):
    manifest = load_dataset(framed)
    table, seen = LensTable(), []
    summary = locate_dataset(manifest, table, tmp_path / "run", lambda *a: seen.append(a))
    assert summary.total == 12 and summary.found == 12 and summary.cached == 0
    assert seen[-1] == (12, 12, 12)
    ious = [table.get(r.image).circle.iou(Circle(*r.lens)) for r in manifest.records]
    assert min(ious) > 0.75 and np.median(ious) > 0.9  # the finder's circles, close to the drawn ones
    cache = json.loads((framed / CACHE_FILE).read_text())
    assert set(cache["images"]) == {r.rel_path for r in manifest.records}
    # A second run takes every circle from the cache, except for a photograph that changed.
    first = manifest.records[0]
    os.utime(first.image, ns=(os.stat(first.image).st_atime_ns, os.stat(first.image).st_mtime_ns + 10**9))
    again = LensTable()
    summary = locate_dataset(manifest, again, tmp_path / "run", None)
    assert summary.cached == 11 and summary.found == 12
    assert again.get(first.image).circle == table.get(first.image).circle


def test_a_read_only_dataset_keeps_its_cache_in_the_run_folder(framed, tmp_path, monkeypatch):
    real = LensTable.save

    def refuse_dataset(self, file, records):
        if file.parent == framed:
            raise PermissionError(13, "Permission denied")
        real(self, file, records)

    monkeypatch.setattr(LensTable, "save", refuse_dataset)
    manifest = load_dataset(framed)
    summary = locate_dataset(manifest, LensTable(), tmp_path / "run", None)
    assert summary.cache == str(tmp_path / "run" / CACHE_FILE) and not (framed / CACHE_FILE).exists()
    assert locate_dataset(manifest, LensTable(), tmp_path / "run", None).cached == 12  # read back from the run folder


def test_a_damaged_cache_is_refound_and_an_unreadable_image_is_named(framed, tmp_path):
    (framed / CACHE_FILE).write_text("{not json")
    manifest = load_dataset(framed)
    assert locate_dataset(manifest, LensTable(), tmp_path / "run", None).cached == 0
    bad = manifest.records[3]
    bad.image.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=bad.rel_path):
        locate_dataset(manifest, LensTable(), tmp_path / "run", None)


def test_training_and_grading_see_the_same_lens_square(framed):
    manifest = load_dataset(framed)
    ds = GradingDataset(manifest.records, DEFAULT_SCHEMA, 32, train=False, crop=LENS)
    record = manifest.records[0]
    rgb = cv2.cvtColor(cv2.imread(str(record.image)), cv2.COLOR_BGR2RGB)
    fit = find_lens(rgb)
    assert torch.equal(ds[0]["image"], build_transform(PreprocessConfig(32, crop=LENS))(rgb, fit.circle))
    centre = GradingDataset(manifest.records, DEFAULT_SCHEMA, 32, train=False)
    assert torch.equal(centre[0]["image"], preprocess_eval(rgb, 32))
