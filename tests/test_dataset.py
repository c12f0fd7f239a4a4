"""Splits, the torch Dataset and the transforms that feed training and inference."""

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import engine.data.dataset as dsmod
from engine.data.dataset import IMAGENET_MEAN, IMAGENET_STD, GradingDataset, split_records
from engine.data.manifest import Record
from engine.data.transforms import Augment, augment, center_square, preprocess_eval
from engine.io import ImageReadError, read_image, read_image_reduced
from engine.schema import DEFAULT_SCHEMA

S = 32


def rec(i, grade, patient=None, split=None, subs=(0,) * 6, lo=None, hi=None, image=None):
    path = Path(image) if image else Path(f"/nowhere/{i}.png")
    return Record(image=path, rel_path=path.name, grade=grade, sublabels=tuple(subs), patient_id=patient,
                  split=split, grade_min=lo, grade_max=hi, line=i + 2)


def ids(parts):
    return {s: [r.line for r in rs] for s, rs in parts.items()}


# ---- split_records ---------------------------------------------------------------------------


def test_patients_stay_in_one_split_and_grades_are_stratified():
    records = [rec(i, grade=(i // 2) % 8, patient=f"P{i // 2}") for i in range(80)]  # 40 patients x 2 eyes
    parts = split_records(records, seed=3)
    owner = {}
    for split, rs in parts.items():
        for r in rs:
            assert owner.setdefault(r.patient_id, split) == split
    assert sorted(r.line for rs in parts.values() for r in rs) == [r.line for r in records]
    assert [len(parts[s]) for s in ("train", "val", "test")] == [56, 12, 12]
    assert len({r.grade for r in parts["val"]}) >= 5 and len({r.grade for r in parts["test"]}) >= 5
    assert set(Counter(r.grade for r in parts["train"])) == set(range(8))


def test_split_is_deterministic_per_seed():
    records = [rec(i, grade=i % 8, patient=f"P{i // 3}") for i in range(60)]
    assert ids(split_records(records, seed=1)) == ids(split_records(list(records), seed=1))
    assert ids(split_records(records, seed=1)) != ids(split_records(records, seed=2))


def test_without_patients_each_image_is_stratified_by_grade():
    records = [rec(i, grade=i % 8) for i in range(96)]
    parts = split_records(records, val_frac=0.25, test_frac=0.25, seed=0)
    for split in ("val", "test"):
        assert Counter(r.grade for r in parts[split]) == {g: 3 for g in range(8)}


def test_explicit_split_column_is_honoured_only_when_complete():
    records = [rec(i, grade=i % 8, split=("train", "val", "test")[i % 3]) for i in range(12)]
    parts = split_records(records, seed=5)
    assert all(r.split == s for s, rs in parts.items() for r in rs)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [4, 4, 4]
    partial = [*records[:-1], rec(11, grade=3)]
    moved = [r for s, rs in split_records(partial, seed=5).items() for r in rs[:-1] if r.split != s]
    assert moved  # the column is ignored: rows land where the stratified split puts them


@pytest.mark.parametrize("sizes", [[1] * 10, [8, 1, 1], [6, 2, 1, 1], [3, 3, 3, 3]])
def test_val_and_test_never_empty_from_ten_records(sizes):
    records, i = [], 0
    for p, n in enumerate(sizes):
        for _ in range(n):
            records.append(rec(i, grade=p % 8, patient=f"P{p}"))
            i += 1
    parts = split_records(records, seed=0)
    assert parts["val"] and parts["test"] and parts["train"]


def test_bad_fractions_are_refused():
    with pytest.raises(ValueError, match="sum to less than 1"):
        split_records([rec(0, 1)], val_frac=0.5, test_frac=0.5)


# ---- GradingDataset ---------------------------------------------------------------------------


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(40, 60), (64, 48), (50, 50)]):
        path = tmp_path / f"img{i}.png"
        assert cv2.imwrite(str(path), rng.integers(0, 255, (h, w, 3), np.uint8))
        paths.append(path)
    return paths


@pytest.fixture
def records(images):
    return [
        rec(0, 2, subs=(1, None, 4, None, 2, 3), image=images[0]),
        rec(1, 5, subs=(None,) * 6, lo=4, hi=6, image=images[1]),
        rec(2, 7, subs=(2, 5, 8, 3, 3, 3), lo=6, image=images[2]),
    ]


def test_eval_item_shapes_dtypes_and_mask(records):
    ds = GradingDataset(records, DEFAULT_SCHEMA, S, train=False)
    item = ds[0]
    assert item["image"].shape == (3, S, S) and item["image"].dtype == torch.float32
    assert item["grade"].dtype == torch.int64 and int(item["grade"]) == 2
    assert item["sublabels"].dtype == torch.int64 and item["sublabels"].tolist() == [1, 0, 4, 0, 2, 3]
    assert item["sub_mask"].dtype == torch.bool and item["sub_mask"].tolist() == [True, False, True, False, True, True]
    assert (int(item["grade_min"]), int(item["grade_max"]), int(item["index"])) == (2, 2, 0)
    assert ds[1]["sub_mask"].tolist() == [False] * 6 and ds[1]["sublabels"].tolist() == [0] * 6
    assert (int(ds[1]["grade_min"]), int(ds[1]["grade_max"])) == (4, 6)
    assert (int(ds[2]["grade_min"]), int(ds[2]["grade_max"])) == (6, 7)
    assert ds[2]["grade_min"].dtype == torch.int64


def test_eval_item_equals_preprocess_eval(records):
    ds = GradingDataset(records, DEFAULT_SCHEMA, S, train=False, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    for i, r in enumerate(records):
        expected = preprocess_eval(read_image(r.image), S, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        assert torch.equal(ds[i]["image"], expected)


def test_train_items_are_augmented_and_reproducible(records):
    ds = GradingDataset(records, DEFAULT_SCHEMA, S, train=True)
    torch.manual_seed(0)
    a = ds[1]["image"]
    torch.manual_seed(0)
    b = ds[1]["image"]
    c = ds[1]["image"]
    assert a.shape == (3, S, S) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_cache_decodes_each_image_once(records, monkeypatch):
    calls = []

    def counting(path, min_side):
        calls.append(path)
        return read_image_reduced(path, min_side)

    monkeypatch.setattr(dsmod, "read_image_reduced", counting)
    cached = GradingDataset(records, DEFAULT_SCHEMA, S, train=True)
    cached.preload()
    for _ in range(3):
        cached[0], cached[1]
    assert len(calls) == 3
    assert cached.image(0).shape == (round(1.15 * S), round(1.15 * S), 3)
    calls.clear()
    uncached = GradingDataset(records, DEFAULT_SCHEMA, S, train=False, cache=False)
    uncached[0], uncached[0]
    assert len(calls) == 2


def test_bad_image_raises_image_read_error_naming_it(tmp_path, records):
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    ds = GradingDataset([rec(0, 1, image=bad)], DEFAULT_SCHEMA, S, train=False)
    with pytest.raises(ImageReadError, match="bad.png"):
        ds[0]


def test_dataloader_batches(records):
    loader = torch.utils.data.DataLoader(GradingDataset(records, DEFAULT_SCHEMA, S, train=True), batch_size=2)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 3, S, S) and batch["sublabels"].shape == (2, 6)
    assert batch["grade"].tolist() == [2, 5] and batch["index"].tolist() == [0, 1]


def test_record_with_wrong_number_of_sublabels_is_refused(records):
    with pytest.raises(ValueError, match="has 2 sub-labels but the schema has 6"):
        GradingDataset([rec(0, 1, subs=(1, 2))], DEFAULT_SCHEMA, S, train=False)


def test_imagenet_constants():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)


# ---- transforms --------------------------------------------------------------------------------


def test_preprocess_eval_keeps_aspect_by_centre_crop():
    rgb = np.zeros((40, 80, 3), np.uint8)
    rgb[:, :20] = (255, 0, 0)
    rgb[:, 60:] = (255, 0, 0)
    rgb[:, 20:60] = (0, 200, 0)
    x = preprocess_eval(rgb, 16)
    assert x.shape == (3, 16, 16)
    torch.testing.assert_close(x[1], torch.full((16, 16), (200 / 255 - 0.456) / 0.224))
    torch.testing.assert_close(x[0], torch.full((16, 16), -0.485 / 0.229))


def test_preprocess_eval_refuses_non_rgb_uint8():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        preprocess_eval(np.zeros((8, 8), np.uint8), 8)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        preprocess_eval(np.zeros((8, 8, 3), np.float32), 8)


def test_augment_with_everything_off_is_the_identity():
    rgb = np.random.default_rng(1).integers(0, 255, (S, S, 3), np.uint8)
    np.testing.assert_array_equal(augment(rgb, S, np.random.default_rng(0), OFF), rgb)


OFF = Augment(scale=(1, 1), ratio=(1, 1), translate=0, rotate=False, flip=False, exposure=0, brightness=0, contrast=0,
              gamma=(1, 1), white_balance=0, blur_p=0, downscale_p=0, noise_p=0, jpeg_p=0)


def _high_freq(img: np.ndarray) -> float:
    """Mean absolute difference between horizontal neighbours: fine detail and noise."""
    return float(np.abs(np.diff(img.astype(np.float32), axis=1)).mean())


def test_each_camera_effect_does_what_it_says():
    from dataclasses import replace

    rng = np.random.default_rng(3)
    flat = np.full((32, 32, 3), 128, np.uint8)
    stripes = np.zeros((32, 32, 3), np.uint8)
    stripes[:, ::2] = 200
    noisy = augment(flat, 32, rng, replace(OFF, noise_p=1.0, read_noise=(6.0, 6.0), shot_noise=0.0))
    assert 4.0 < float(noisy.astype(np.float32).std()) < 8.0  # read noise of 6 on a flat grey
    small = augment(stripes, 32, rng, replace(OFF, downscale_p=1.0, downscale=(0.5, 0.5)))
    assert _high_freq(small) < 0.2 * _high_freq(stripes)  # a half-resolution sensor cannot hold 1-px stripes
    jpeg = augment(stripes, 32, rng, replace(OFF, jpeg_p=1.0, jpeg_quality=(10, 10)))
    assert 0 < float(np.abs(jpeg.astype(np.int16) - stripes).mean()) < 60
    bright = augment(flat, 32, rng, replace(OFF, exposure=0.3))
    assert abs(float(bright.mean()) - 128) > 1.0  # a different exposure shifts every pixel alike
    assert float(bright.std()) < 1.0


def test_named_augmentations():
    assert Augment.named("realistic") == Augment()
    assert Augment.named("basic").noise_p == 0 and Augment.named("basic").jpeg_p == 0
    assert Augment.named("none") is None
    with pytest.raises(ValueError, match="unknown augmentation"):
        Augment.named("heavy")


def test_augment_keeps_a_centred_lens_centred():
    rgb = np.zeros((40, 40, 3), np.uint8)
    cv2.circle(rgb, (20, 20), 10, (220, 120, 60), -1)
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = augment(rgb, S, rng)
        assert out.shape == (S, S, 3) and out.dtype == np.uint8
        assert out[S // 2, S // 2, 0] > 120
        assert out[:3, :3].max() < 40


def test_center_square_resizes_short_side():
    rgb = np.zeros((30, 90, 3), np.uint8)
    assert center_square(rgb, 12).shape == (12, 12, 3)
