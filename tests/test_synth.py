"""The synthetic retro-illumination generator: determinism, measured labels, the grade rule, files, CLI."""

from __future__ import annotations

import csv
import itertools

import cv2
import numpy as np
import pytest

from engine.cli import main
from engine.data.manifest import load_dataset, validate_dataset
from engine.schema import DEFAULT_SCHEMA, Schema
from engine.synth.framing import KINDS
from engine.synth.render import draw_session
from engine.synth.sheet import (
    Spoke,
    SynthError,
    contact_sheet,
    grade_from_measurements,
    measure_mask,
    render_sample,
    write_dataset,
)
from engine.synth.writer import mask_paths

NAMES = DEFAULT_SCHEMA.names


def _in_range(sub: dict[str, int]) -> bool:
    return all(s.minimum <= sub[s.name] <= s.maximum for s in DEFAULT_SCHEMA.sublabels) and set(sub) == set(NAMES)


def _read_rows(folder) -> list[dict[str, str]]:
    with open(folder / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_same_seed_gives_same_sample_and_another_seed_differs():
    a = render_sample(np.random.default_rng(7), 64, target_grade=4)
    b = render_sample(np.random.default_rng(7), 64, target_grade=4)
    c = render_sample(np.random.default_rng(8), 64, target_grade=4)
    assert a.image.shape == (64, 64, 3) and a.image.dtype == np.uint8
    assert a.opacity_mask.shape == (64, 64) and a.opacity_mask.dtype == np.float32
    assert np.array_equal(a.image, b.image) and np.array_equal(a.opacity_mask, b.opacity_mask)
    assert a.sublabels == b.sublabels and a.grade == b.grade
    assert not np.array_equal(a.image, c.image)


def test_labels_are_measured_from_the_mask_and_follow_the_grade_rule():
    for i in range(200):
        s = render_sample(np.random.default_rng([3, i]), 64)
        assert s.true_grade == grade_from_measurements(s.true_sublabels, s.area_fraction)
        assert s.grade == s.true_grade and s.sublabels == s.true_sublabels
        assert _in_range(s.sublabels) and 0 <= s.grade <= 7
        assert 0.0 <= s.opacity_mask.min() and s.opacity_mask.max() <= 1.0
        assert measure_mask(s.opacity_mask, s.pupil_center, s.pupil_radius) == (s.true_sublabels, s.area_fraction)
        assert (s.area_fraction == 0) == (s.true_grade == 0) == (s.true_sublabels["pupil_area_obscured"] == 0)


def _sub(central=0, sectors=1, radial=1, density=2, morph=1) -> dict[str, int]:
    return {
        "central_involvement": central,
        "pupil_area_obscured": 1,
        "sectors_involved": sectors,
        "radial_extent": radial,
        "opacity_density": density,
        "morphology": morph,
    }


@pytest.mark.parametrize(
    ("sub", "area", "grade"),
    [
        (_sub(sectors=0, radial=0, density=0, morph=0), 0.0, 0),
        (_sub(radial=1), 0.01, 1),  # lens edge only
        (_sub(radial=1), 0.03, 2),  # edge only but 3 % of the pupil
        (_sub(radial=2, sectors=2), 0.05, 2),
        (_sub(radial=1, sectors=3), 0.01, 3),  # the gap: < 10 % over 3+ sectors reads as 3
        (_sub(sectors=5, radial=2), 0.15, 3),
        (_sub(central=1, radial=3), 0.05, 4),
        (_sub(sectors=8, radial=2), 0.30, 4),
        (_sub(central=1, sectors=8, radial=3), 0.60, 5),
        (_sub(central=2, sectors=8, radial=3, density=1), 0.60, 5),  # covered but faint
        (_sub(central=2, sectors=8, radial=3, density=2), 0.40, 6),
        (_sub(sectors=8, radial=3), 0.80, 6),
        (_sub(sectors=8, radial=3, morph=3), 0.45, 7),
        (_sub(central=2, sectors=8, radial=3), 0.95, 7),
    ],
)
def test_grade_rule_examples(sub, area, grade):
    assert grade_from_measurements(sub, area) == grade


def test_grade_rule_is_monotone_in_every_measurement():
    rng = np.random.default_rng(0)
    spans = {s.name: s.maximum for s in DEFAULT_SCHEMA.sublabels}
    for _ in range(500):
        sub = {k: int(rng.integers(0, m + 1)) for k, m in spans.items()}
        area = float(rng.uniform(0.001, 1.0))
        g = grade_from_measurements(sub, area)
        for k in spans:
            if sub[k] < spans[k]:
                assert grade_from_measurements({**sub, k: sub[k] + 1}, area) >= g, (sub, k)
        assert grade_from_measurements(sub, min(area + 0.1, 1.0)) >= g


def test_balanced_dataset_covers_every_grade(tmp_path):
    write_dataset(tmp_path, n=24, seed=1, image_size=48, balanced=True)
    counts = np.bincount([int(r["grade"]) for r in _read_rows(tmp_path)], minlength=8)
    assert counts.sum() == 24 and counts.min() >= 2 and counts.max() <= 4


def test_label_noise_moves_labels_one_step_and_stays_in_range():
    changed = total = grade_changed = 0
    for i in range(60):
        s = render_sample(np.random.default_rng([5, i]), 32, label_noise=0.5)
        assert _in_range(s.sublabels) and 0 <= s.grade <= 7
        assert s.true_grade == grade_from_measurements(s.true_sublabels, s.area_fraction)
        for k in NAMES:
            assert abs(s.sublabels[k] - s.true_sublabels[k]) <= 1
            changed += s.sublabels[k] != s.true_sublabels[k]
            total += 1
        assert abs(s.grade - s.true_grade) <= 1
        grade_changed += s.grade != s.true_grade
    assert 0.38 < changed / total < 0.62
    assert 15 < grade_changed < 45


def test_forced_single_spoke_lies_in_its_sector():
    s = render_sample(np.random.default_rng(2), 128, spokes=[Spoke(angle=60, half_width=5, reach=0.6, density=0.9)])
    cx, cy = s.pupil_center
    ys, xs = np.mgrid[0:128, 0:128]
    theta = np.degrees(np.arctan2(cy - ys, xs - cx)) % 360
    m = s.opacity_mask
    assert m.sum() > 20
    assert m[np.abs(theta - 60) <= 15].sum() / m.sum() > 0.97
    assert m[ys < cy].sum() / m.sum() > 0.97  # 60 degrees points up and right on the image
    assert s.true_sublabels["sectors_involved"] in (1, 2) and s.true_sublabels["morphology"] == 1
    assert s.true_sublabels["radial_extent"] == 2


def test_spokes_accept_tuples_and_mappings_and_refuse_nonsense():
    a = render_sample(np.random.default_rng(4), 64, spokes=[(200, 4, 0.5, 0.8)])
    b = render_sample(
        np.random.default_rng(4), 64, spokes=[{"angle": 200, "half_width": 4, "reach": 0.5, "density": 0.8}]
    )
    assert np.array_equal(a.opacity_mask, b.opacity_mask) and a.area_fraction > 0
    empty = render_sample(np.random.default_rng(4), 64, spokes=[])
    assert empty.true_grade == 0 and empty.opacity_mask.max() == 0
    with pytest.raises(SynthError, match="reach"):
        render_sample(np.random.default_rng(4), 64, spokes=[(0, 4, 1.5, 0.8)])
    with pytest.raises(SynthError):
        render_sample(np.random.default_rng(4), 64, spokes=["wide"])
    with pytest.raises(SynthError, match="not both"):
        render_sample(np.random.default_rng(4), 64, target_grade=3, spokes=[(0, 4, 0.5, 0.8)])
    with pytest.raises(SynthError, match="image size"):
        render_sample(np.random.default_rng(4), 16)
    with pytest.raises(SynthError, match="target grade"):
        render_sample(np.random.default_rng(4), 64, target_grade=8)


def test_coalescent_cataract_looks_darker_than_a_clear_lens():
    def pupil_mean(s) -> float:
        cx, cy = s.pupil_center
        r = int(s.pupil_radius * 0.9)
        return float(s.image[cy - r : cy + r, cx - r : cx + r].mean())

    clear = [pupil_mean(render_sample(np.random.default_rng([9, i]), 64, target_grade=0)) for i in range(8)]
    dense = [pupil_mean(render_sample(np.random.default_rng([9, i]), 64, target_grade=7)) for i in range(8)]
    assert np.mean(dense) < 0.8 * np.mean(clear)


def test_write_dataset_writes_images_labels_and_schema(tmp_path):
    out = write_dataset(tmp_path / "ds", n=5, seed=2, image_size=40)
    rows = _read_rows(out)
    with open(out / "labels.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == ["image", "grade", *NAMES, "patient_id", "eye", "lens_cx", "lens_cy", "lens_r"]
    assert [r["image"] for r in rows] == [
        f"images/p000{p}_{e}.jpg" for p, e in itertools.product((1, 2, 3), ("OD", "OS"))
    ][:5]
    assert [r["eye"] for r in rows] == ["OD", "OS", "OD", "OS", "OD"]
    assert [r["patient_id"] for r in rows] == ["p0001", "p0001", "p0002", "p0002", "p0003"]
    for r in rows:
        img = cv2.imread(str(out / r["image"]))
        assert img is not None and img.shape == (40, 40, 3)
        assert _in_range({k: int(r[k]) for k in NAMES}) and 0 <= int(r["grade"]) <= 7
    assert Schema.load(out / "schema.json") == DEFAULT_SCHEMA
    with pytest.raises(SynthError, match="already holds a dataset"):
        write_dataset(out, n=2, seed=2, image_size=40)
    write_dataset(out, n=2, seed=2, image_size=40, overwrite=True)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["p0001_OD.jpg", "p0001_OS.jpg"]


def test_write_dataset_is_identical_whatever_the_worker_count(tmp_path):
    a = write_dataset(tmp_path / "a", n=6, seed=11, image_size=32, label_noise=0.3)
    b = write_dataset(tmp_path / "b", n=6, seed=11, image_size=32, label_noise=0.3, workers=2)
    c = write_dataset(tmp_path / "c", n=6, seed=12, image_size=32, label_noise=0.3)
    assert (a / "labels.csv").read_bytes() == (b / "labels.csv").read_bytes()
    for r in _read_rows(a):
        assert np.array_equal(cv2.imread(str(a / r["image"])), cv2.imread(str(b / r["image"])))
    assert any(
        not np.array_equal(cv2.imread(str(a / r["image"])), cv2.imread(str(c / r["image"]))) for r in _read_rows(a)
    )


def test_contact_sheet_shows_one_tile_per_grade():
    sheet = contact_sheet(seed=0, image_size=64)
    assert sheet.dtype == np.uint8 and sheet.shape[1] == 4 * 64 and sheet.shape[0] > 2 * 64


def test_cli_writes_a_dataset_and_refuses_bad_requests(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["synth", str(out), "--n", "3", "--image-size", "32", "--seed", "4"]) == 0
    assert "images/s" in capsys.readouterr().out and len(_read_rows(out)) == 3
    assert main(["synth", str(out), "--n", "3", "--image-size", "32"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["synth", str(out), "--n", "2", "--image-size", "32", "--overwrite"]) == 0
    assert len(_read_rows(out)) == 2
    for bad in (["--n", "0"], ["--image-size", "16"], ["--image-size", "4096"], ["--label-noise", "1.5"]):
        assert main(["synth", str(tmp_path / "other"), *bad]) == 2
        assert "error:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["synth", str(tmp_path / "other"), "--n", "many"])
    assert e.value.code == 2


def test_centred_framing_keeps_the_classic_draws_and_other_kinds_move_the_lens():
    classic = render_sample(np.random.default_rng(21), 96, target_grade=3)
    named = render_sample(np.random.default_rng(21), 96, target_grade=3, framing="centred")
    assert np.array_equal(classic.image, named.image) and classic.framing == "centred"
    for kind in KINDS:
        for i in range(6):
            s = render_sample(np.random.default_rng([22, i]), 128, framing=kind)
            cx, cy, r = s.circle
            assert s.framing == kind and r <= cx <= 127 - r and r <= cy <= 127 - r  # the whole disc is in the frame
            assert s.true_grade == grade_from_measurements(s.true_sublabels, s.area_fraction)
            if kind == "zoomed_out":
                assert 0.075 * 128 <= r <= 0.2 * 128
            if kind == "close_up":
                assert r >= 0.4 * 128
            if kind == "off_centre":
                assert max(abs(cx - 64), abs(cy - 64)) >= 0.45 * (64 - r - 2) - 1
    kinds = {render_sample(np.random.default_rng([23, i]), 48, framing="varied").framing for i in range(60)}
    assert kinds == set(KINDS)
    with pytest.raises(SynthError, match="framing"):
        render_sample(np.random.default_rng(1), 64, framing="sideways")


def test_a_lowered_lid_hides_the_top_of_the_disc_and_the_lens_mask_says_so():
    s = render_sample(np.random.default_rng(31), 128, framing="lid")
    cx, cy, r = (int(round(v)) for v in s.circle)
    lens = s.lens_mask()
    assert set(np.unique(lens)) == {0, 128, 255}
    assert lens[cy, cx] == 255 and lens[max(cy - r + 2, 0), cx] == 128  # the top of the disc is under the lid
    assert lens[cy, min(cx + r + 3, 127)] == 0
    assert s.image[max(cy - r + 2, 0), cx, 0] < 0.6 * s.image[cy + r // 2, cx, 0]  # skin is darker than the reflex


def test_labels_carry_the_true_circle_and_masks_sit_beside_the_images(tmp_path):
    out = write_dataset(tmp_path / "ds", n=4, seed=3, image_size=64, framing="varied", masks=True)
    assert validate_dataset(out).ok
    records = load_dataset(out).records
    for r, rec in zip(_read_rows(out), records):
        i = records.index(rec)
        s = render_sample_for(3, i, 64, "varied")
        assert (float(r["lens_cx"]), float(r["lens_cy"])) == s.pupil_center
        assert float(r["lens_r"]) == pytest.approx(s.pupil_radius, abs=0.005)
        assert rec.lens == pytest.approx(s.circle, abs=0.005)
        opacity_path, lens_path = mask_paths(r["image"])
        opacity = cv2.imread(str(out / opacity_path), cv2.IMREAD_UNCHANGED)
        lens = cv2.imread(str(out / lens_path), cv2.IMREAD_UNCHANGED)
        assert opacity.shape == lens.shape == (64, 64) and opacity.dtype == np.uint8
        assert np.abs(opacity / 255.0 - s.opacity_mask).max() <= 0.5 / 255 + 1e-6
        assert np.array_equal(lens, s.lens_mask())
    write_dataset(out, n=2, seed=3, image_size=64, overwrite=True)
    assert not any((out / "masks").iterdir())  # old masks of ours do not linger
    assert main(["synth", str(tmp_path / "cli"), "--n", "2", "--image-size", "32", "--masks", "--framing", "lid"]) == 0
    assert len(list((tmp_path / "cli" / "masks").iterdir())) == 4
    assert main(["synth", str(tmp_path / "bad"), "--framing", "sideways"]) == 2


def render_sample_for(seed: int, index: int, size: int, framing: str):
    """What write_dataset draws for sample `index` (same seeds), to compare files against."""
    session = draw_session(np.random.default_rng([seed, index // 2 + 1, 1]))
    return render_sample(np.random.default_rng([seed, index, 0]), size, session=session, framing=framing)
